/** Pending bytes at which the writer flushes at once instead of at the end of the tick. */
const FLUSH_AT = 64 * 1024;
/** A gather buffer grown past this is dropped after its write. */
const KEEP_BUFFER = 1024 * 1024;

/**
 * The SDK's side of stdout: what one tick of the plugin writes (the answers to every request
 * of a chunk, their `$/log` records) goes out in one `writeSync`, gathered in a reused buffer,
 * at the end of the tick. A message of 64 KiB or more, or that much pending, is written at
 * once, so a handler that logs in a loop is still held back by the pipe.
 */
export class StdoutWriter {
  readonly #write: (bytes: Uint8Array) => number;
  #parts: Uint8Array[] = [];
  #bytes = 0;
  #scheduled = false;
  #gather = new Uint8Array(FLUSH_AT);
  #broken = false;

  /** @param write writes some of `bytes` synchronously and says how many (`Deno.stdout.writeSync`) */
  constructor(write: (bytes: Uint8Array) => number) {
    this.#write = write;
  }

  /** Takes one encoded message; `bytes` is not retained past the next flush. */
  readonly send = (bytes: Uint8Array): void => {
    if (this.#broken) return;
    this.#parts.push(bytes);
    this.#bytes += bytes.length;
    if (this.#bytes >= FLUSH_AT) {
      this.flush();
      return;
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#task);
    }
  };

  /** Writes everything pending now (before an exit); throws what `write` throws. */
  flush(): void {
    const parts = this.#parts;
    if (parts.length === 0) return;
    const total = this.#bytes;
    this.#parts = [];
    this.#bytes = 0;
    let bytes: Uint8Array;
    if (parts.length === 1) {
      bytes = parts[0]!;
    } else {
      if (this.#gather.length < total) this.#gather = new Uint8Array(total);
      let off = 0;
      for (const p of parts) {
        this.#gather.set(p, off);
        off += p.length;
      }
      bytes = this.#gather.subarray(0, total);
    }
    let off = 0;
    while (off < bytes.length) off += this.#write(bytes.subarray(off));
    if (this.#gather.length > KEEP_BUFFER) this.#gather = new Uint8Array(FLUSH_AT);
  }

  readonly #task = (): void => {
    this.#scheduled = false;
    try {
      this.flush();
    } catch {
      // stdout is gone (the host closed it): nothing more can reach the host, and the read
      // loop ends the plugin when stdin closes.
      this.#broken = true;
    }
  };
}
