import { RpcError } from "./rpc_error.ts";

/** The default limit of one NDJSON line: 16 MiB (DESIGN §5). */
export const DEFAULT_MAX_LINE_BYTES: number = 16 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const INITIAL_CAPACITY = 64 * 1024;
// A buffer grown for a rare huge line is dropped after that line instead of being kept for the
// life of the connection: a host runs many plugins, each with its own decoder.
const RELEASE_ABOVE = 1024 * 1024;

/** Options of {@linkcode NdjsonDecoder}. */
export interface NdjsonDecoderOptions {
  /**
   * The longest accepted line in bytes, not counting its `\n` (a `\r` before it counts).
   * Longer lines are reported as `RPC_LINE_TOO_LONG` and skipped.
   * @default {16 MiB}
   */
  readonly maxLineBytes?: number;
  /**
   * Whether invalid UTF-8 is an error (`RPC_INVALID_UTF8`, line skipped). `false` replaces it
   * with U+FFFD instead, which suits free-text streams such as stderr.
   * @default {true}
   */
  readonly fatal?: boolean;
}

/** Receives one decoded line, without its line ending. */
export type LineCallback = (line: string) => void;
/** Receives a framing error; decoding continues after it. */
export type DecodeErrorCallback = (error: RpcError) => void;

/**
 * A push-based decoder of newline-delimited text (NDJSON framing), independent of the
 * transport: feed it whatever chunks a pipe, socket or `readSync` produced.
 *
 * - Lines may be split across chunks and chunks may hold many lines; `\r\n` is accepted and
 *   empty lines are skipped.
 * - Bytes are copied only when a line spans chunks, into one reusable buffer, so the caller
 *   may reuse its chunk right after `push()` returns.
 * - A line longer than `maxLineBytes` is reported once (`RPC_LINE_TOO_LONG`); its bytes are
 *   dropped up to the next `\n`, so memory stays bounded, and decoding resumes after it.
 * - A line that is not valid UTF-8 is reported (`RPC_INVALID_UTF8`) and skipped.
 * - {@linkcode NdjsonDecoder.end} reports bytes left without a final `\n` (`RPC_TRUNCATED`).
 *
 * Errors go to `onError`; without it, the first error of a call is thrown once the whole
 * chunk has been consumed (later errors of that chunk are then lost).
 *
 * @example
 * ```ts
 * const decoder = new NdjsonDecoder({ maxLineBytes: 1 << 20 });
 * for await (const chunk of Deno.stdin.readable) {
 *   decoder.push(chunk, (line) => handle(JSON.parse(line)), (err) => console.warn(err.message));
 * }
 * decoder.end((err) => console.warn(err.message));
 * ```
 */
export class NdjsonDecoder {
  readonly #max: number;
  readonly #fatal: boolean;
  readonly #text: TextDecoder;
  readonly #strict: TextDecoder;
  #buf: Uint8Array;
  /** Bytes of the unfinished line held in `#buf`. */
  #len = 0;
  /** Inside an over-long line that was already reported: drop bytes up to the next `\n`. */
  #discarding = false;
  /** Complete lines seen so far, empty and rejected ones included (for error locations). */
  #lines = 0;
  #firstError: RpcError | undefined;
  readonly #collect = (error: RpcError): void => {
    this.#firstError ??= error;
  };

  /**
   * Creates an empty decoder.
   *
   * @param options `maxLineBytes` (default 16 MiB) and `fatal` (default `true`)
   * @throws {RangeError} when `maxLineBytes` is not a positive integer
   */
  constructor(options: NdjsonDecoderOptions = {}) {
    const max = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${max}`);
    }
    this.#max = max;
    this.#fatal = options.fatal ?? true;
    // Deno's fatal TextDecoder is several times slower than the replacing one, so decode with
    // the latter and re-check with the strict one only when a U+FFFD shows up (which valid
    // input rarely contains). `ignoreBOM` keeps a BOM as text: it is not whitespace to JSON.
    this.#text = new TextDecoder("utf-8", { ignoreBOM: true });
    this.#strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
    this.#buf = new Uint8Array(Math.min(INITIAL_CAPACITY, max));
  }

  /** The longest accepted line in bytes. */
  get maxLineBytes(): number {
    return this.#max;
  }

  /** Bytes of an unfinished line currently held (never more than `maxLineBytes`). */
  get bufferedBytes(): number {
    return this.#len;
  }

  /**
   * Decodes one chunk, calling `onLine` for each complete non-empty line in order.
   *
   * If `onLine` throws, the remaining lines of this chunk are dropped and the exception
   * propagates; the decoder itself stays aligned on line boundaries.
   *
   * @param chunk bytes in any split; not retained after the call
   * @param onLine receives each line without `\n` / `\r\n`
   * @param onError receives framing errors; when omitted, the first one is thrown
   */
  push(chunk: Uint8Array, onLine: LineCallback, onError?: DecodeErrorCallback): void {
    const report = onError ?? this.#collect;
    this.#firstError = undefined;
    const end = chunk.length;
    let pos = 0;

    if (this.#discarding) {
      const lf = chunk.indexOf(LF);
      if (lf === -1) return;
      this.#discarding = false;
      this.#lines++;
      pos = lf + 1;
    }

    // Complete the line left over from earlier chunks, decoding it now so `#buf` is free again.
    let first: string | undefined;
    if (this.#len > 0 && pos < end) {
      const lf = chunk.indexOf(LF, pos);
      if (lf === -1) {
        this.#append(chunk, pos, end, report);
        this.#throwCollected(onError);
        return;
      }
      const total = this.#len + (lf - pos);
      this.#lines++;
      if (total > this.#max) {
        report(this.#tooLong(this.#lines, total));
      } else {
        this.#reserve(total);
        this.#buf.set(chunk.subarray(pos, lf), this.#len);
        first = this.#decodeLine(this.#buf, 0, total, report);
        if (this.#buf.length > RELEASE_ABOVE) this.#buf = new Uint8Array(INITIAL_CAPACITY);
      }
      this.#len = 0;
      pos = lf + 1;
    }

    const lastLf = pos < end ? chunk.lastIndexOf(LF) : -1;
    const restStart = lastLf >= pos ? lastLf + 1 : pos;
    try {
      if (first !== undefined) onLine(first);
      if (lastLf >= pos) this.#emitLines(chunk, pos, lastLf, onLine, report);
    } finally {
      // Keep the tail even when `onLine` threw, so the next chunk continues the right line.
      if (restStart < end) this.#append(chunk, restStart, end, report);
    }
    this.#throwCollected(onError);
  }

  /**
   * Ends the stream: bytes left without a final `\n` are reported as `RPC_TRUNCATED` and
   * dropped. The decoder is then empty and may be reused.
   *
   * @param onError receives the error; when omitted, it is thrown
   */
  end(onError?: DecodeErrorCallback): void {
    const report = onError ?? this.#collect;
    this.#firstError = undefined;
    if (this.#discarding) {
      // Already reported as too long when it crossed the limit.
      this.#discarding = false;
      this.#lines++;
    } else if (this.#len > 0) {
      const bytes = this.#len;
      this.#len = 0;
      this.#lines++;
      report(
        new RpcError(
          "RPC_TRUNCATED",
          `the stream ended inside line ${this.#lines} (${bytes} bytes without a final newline); ` +
            `the line was dropped. The writer must end every message with "\\n".`,
          { details: { line: this.#lines, bytes } },
        ),
      );
    }
    if (this.#buf.length > INITIAL_CAPACITY) this.#buf = new Uint8Array(INITIAL_CAPACITY);
    this.#throwCollected(onError);
  }

  /** Emits the lines of `chunk[start, lastLf)`; `chunk[lastLf]` is a `\n`. */
  #emitLines(
    chunk: Uint8Array,
    start: number,
    lastLf: number,
    onLine: LineCallback,
    report: DecodeErrorCallback,
  ): void {
    // Fast path: no line in the region can be too long, so decode it with one call and split
    // the string; per-line decoding is only needed to pin an error on a line.
    if (lastLf - start <= this.#max) {
      const text = this.#decode(chunk.subarray(start, lastLf));
      if (text !== undefined) {
        const n = text.length;
        let s = 0;
        while (s <= n) {
          let e = text.indexOf("\n", s);
          if (e === -1) e = n;
          this.#lines++;
          let t = e;
          if (t > s && text.charCodeAt(t - 1) === CR) t--;
          if (t > s) onLine(text.slice(s, t));
          s = e + 1;
        }
        return;
      }
    }
    let s = start;
    while (s <= lastLf) {
      // Always found: chunk[lastLf] is a newline.
      const e = chunk.indexOf(LF, s);
      this.#lines++;
      if (e - s > this.#max) {
        report(this.#tooLong(this.#lines, e - s));
      } else {
        const line = this.#decodeLine(chunk, s, e, report);
        if (line !== undefined) onLine(line);
      }
      s = e + 1;
    }
  }

  /** Decodes `bytes[s, e)` minus a trailing `\r`; `undefined` for an empty or invalid line. */
  #decodeLine(
    bytes: Uint8Array,
    s: number,
    e: number,
    report: DecodeErrorCallback,
  ): string | undefined {
    if (e > s && bytes[e - 1] === CR) e--;
    if (e === s) return undefined;
    const text = this.#decode(bytes.subarray(s, e));
    if (text === undefined) {
      report(
        new RpcError(
          "RPC_INVALID_UTF8",
          `line ${this.#lines} is not valid UTF-8 (${e - s} bytes); the line was skipped. ` +
            `The writer must encode messages as UTF-8.`,
          { details: { line: this.#lines, bytes: e - s } },
        ),
      );
    }
    return text;
  }

  /** UTF-8 to string; `undefined` when invalid and `fatal`. */
  #decode(bytes: Uint8Array): string | undefined {
    const text = this.#text.decode(bytes);
    if (!this.#fatal || !text.includes("\uFFFD")) return text;
    try {
      return this.#strict.decode(bytes);
    } catch {
      return undefined;
    }
  }

  /** Adds `chunk[from, to)` to the unfinished line, or starts discarding if it gets too long. */
  #append(chunk: Uint8Array, from: number, to: number, report: DecodeErrorCallback): void {
    const need = this.#len + (to - from);
    if (need > this.#max) {
      this.#len = 0;
      this.#discarding = true;
      report(this.#tooLong(this.#lines + 1, need));
      return;
    }
    this.#reserve(need);
    this.#buf.set(chunk.subarray(from, to), this.#len);
    this.#len = need;
  }

  /** Grows `#buf` (doubling, capped at the limit) to hold `need <= maxLineBytes` bytes. */
  #reserve(need: number): void {
    if (need <= this.#buf.length) return;
    const grown = new Uint8Array(Math.min(Math.max(need, this.#buf.length * 2), this.#max));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }

  #tooLong(line: number, seen: number): RpcError {
    return new RpcError(
      "RPC_LINE_TOO_LONG",
      `line ${line} is longer than maxLineBytes (${this.#max} bytes; at least ${seen} seen); ` +
        `it was skipped up to the next newline. Send smaller messages or raise maxLineBytes.`,
      { details: { line, maxLineBytes: this.#max, seenBytes: seen } },
    );
  }

  #throwCollected(onError: DecodeErrorCallback | undefined): void {
    if (onError !== undefined || this.#firstError === undefined) return;
    const error = this.#firstError;
    this.#firstError = undefined;
    throw error;
  }
}

const encoder = new TextEncoder();

/**
 * Encodes `message` as one NDJSON line: `JSON.stringify(message) + "\n"` in UTF-8.
 * `JSON.stringify` escapes newlines inside strings, so the result is always exactly one line.
 *
 * @throws {TypeError} when `message` cannot be serialised (BigInt, cycles, `undefined`)
 *
 * @example
 * ```ts
 * await writer.write(encodeMessage({ jsonrpc: "2.0", method: "$/log", params: { level: "info" } }));
 * ```
 */
export function encodeMessage(message: unknown): Uint8Array {
  const json = JSON.stringify(message);
  if (json === undefined) {
    throw new TypeError(`cannot encode ${typeof message} as a JSON message`);
  }
  return encoder.encode(json + "\n");
}
