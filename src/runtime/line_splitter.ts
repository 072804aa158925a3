const LF = 0x0a;

/**
 * Splits a free-text byte stream (a plugin's stderr) into lines with bounded memory: a line
 * longer than `maxLineBytes` is cut there and marked `…[truncated N bytes]`; invalid UTF-8 is
 * replaced. Unlike the protocol decoder it never drops a line.
 */
export class LineSplitter {
  readonly #max: number;
  readonly #decoder = new TextDecoder("utf-8", { fatal: false });
  #buf: Uint8Array;
  #len = 0;
  #dropped = 0;

  /** @param maxLineBytes longest kept line (default 64 KiB) */
  constructor(maxLineBytes = 64 * 1024) {
    if (!(maxLineBytes >= 16)) {
      throw new RangeError(`maxLineBytes must be >= 16, got ${maxLineBytes}`);
    }
    this.#max = maxLineBytes;
    this.#buf = new Uint8Array(Math.min(maxLineBytes, 4096));
  }

  /** Feeds a chunk; calls `onLine` for each complete line (without `\n` or a final `\r`). */
  push(chunk: Uint8Array, onLine: (line: string) => void): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(LF, start);
      const end = nl < 0 ? chunk.length : nl;
      this.#append(chunk.subarray(start, end));
      if (nl < 0) return;
      this.#emit(onLine);
      start = nl + 1;
    }
  }

  /** Emits what is left without a final newline. */
  end(onLine: (line: string) => void): void {
    if (this.#len > 0 || this.#dropped > 0) this.#emit(onLine);
  }

  #append(bytes: Uint8Array): void {
    const room = this.#max - this.#len;
    const take = Math.min(room, bytes.length);
    if (take > 0) {
      if (this.#len + take > this.#buf.length) {
        const grown = new Uint8Array(
          Math.min(this.#max, Math.max(this.#buf.length * 2, this.#len + take)),
        );
        grown.set(this.#buf.subarray(0, this.#len));
        this.#buf = grown;
      }
      this.#buf.set(bytes.subarray(0, take), this.#len);
      this.#len += take;
    }
    this.#dropped += bytes.length - take;
  }

  #emit(onLine: (line: string) => void): void {
    let len = this.#len;
    if (len > 0 && this.#buf[len - 1] === 0x0d) len--;
    let line = this.#decoder.decode(this.#buf.subarray(0, len));
    if (this.#dropped > 0) line += ` …[truncated ${this.#dropped} bytes]`;
    this.#len = 0;
    this.#dropped = 0;
    if (this.#buf.length > 64 * 1024) this.#buf = new Uint8Array(4096);
    onLine(line);
  }
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f\x9b]/g;

/** Escapes control characters and ANSI escapes (`\x1b` becomes `\u001b`) so text is inert. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
