/**
 * A child's stdout or stderr, kept up to a byte limit. Private to the process service.
 *
 * @module
 */

/** Collects at most `max` bytes of a stream; then it stops reading and closes the pipe. */
export class Collector {
  readonly #chunks: Uint8Array[] = [];
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #max: number;
  #size = 0;
  truncated = false;
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>, max: number) {
    this.#reader = stream.getReader();
    this.#max = max;
    this.done = this.#pump();
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) return;
        const room = this.#max - this.#size;
        const kept = value.length > room ? value.subarray(0, room) : value;
        this.#chunks.push(kept);
        this.#size += kept.length;
        if (kept.length < value.length) {
          // Reading on to discard would spend the host's CPU on a child that streams forever.
          this.truncated = true;
          this.cancel();
          return;
        }
      }
    } catch { /* cancelled, or the pipe broke: keep what arrived */ }
  }

  /** Stops reading (a grandchild may hold the pipe open after the child exited). */
  cancel(): void {
    this.#reader.cancel().catch(() => {});
  }

  text(): string {
    const all = new Uint8Array(this.#size);
    let at = 0;
    for (const c of this.#chunks) {
      all.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(all);
  }
}
