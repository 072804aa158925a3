import {
  type DecodeErrorCallback,
  DEFAULT_MAX_LINE_BYTES,
  type LineCallback,
} from "./ndjson_decoder.ts";
import { RpcError } from "./rpc_error.ts";

/**
 * The name of the length-prefixed framing in `$/ready`'s `framing` list (README "Wire
 * protocol"): a receiver that lists it accepts frames as well as NDJSON lines.
 */
export const FRAMING_LP1 = "lp1";

const LF = 0x0a;
const CR = 0x0d;
/** The byte that starts a frame (`@`): no JSON text starts with it, so lines stay lines. */
const MARKER = 0x40;
/** Hex digits of a frame's payload length. */
const HEADER_DIGITS = 8;
/** `@`, the hex length, and the newline after the payload. */
const FRAME_OVERHEAD = 1 + HEADER_DIGITS + 1;
const INITIAL_CAPACITY = 64 * 1024;
const RELEASE_ABOVE = 1024 * 1024;

const enum State {
  /** At the start of a frame or line; nothing held. */
  Start,
  /** Inside an NDJSON line (held in `#buf`, or dropped while `#discarding`). */
  Line,
  /** Reading the hex length after `@`. */
  Header,
  /** Reading (or, when too long, skipping) the payload. */
  Payload,
  /** Expecting the newline that ends a frame. */
  Term,
}

const encoder = new TextEncoder();
const HEX = "0123456789abcdef";

/**
 * Encodes `message` as one length-prefixed frame: `@`, its UTF-8 byte length as 8 lowercase
 * hex digits, the JSON text, `\n`. The payload is still one JSON text without a raw newline,
 * so the frame is also a line that an NDJSON reader would reject as garbage, never misread.
 *
 * @throws {TypeError} when `message` cannot be serialised
 */
export function encodeFrame(message: unknown): Uint8Array {
  const json = JSON.stringify(message);
  if (json === undefined) throw new TypeError(`cannot encode ${typeof message} as a JSON message`);
  // ASCII (the common case) fits in `json.length` bytes; else encode and copy once.
  let out = new Uint8Array(json.length + FRAME_OVERHEAD);
  // Only the payload's room: the byte after it is the closing LF, never payload.
  const room = out.subarray(HEADER_DIGITS + 1, HEADER_DIGITS + 1 + json.length);
  const { read, written } = encoder.encodeInto(json, room);
  let n = written;
  if (read < json.length) {
    const bytes = encoder.encode(json);
    n = bytes.length;
    out = new Uint8Array(n + FRAME_OVERHEAD);
    out.set(bytes, HEADER_DIGITS + 1);
  }
  if (n > 0xffffffff) throw new RangeError(`a frame holds at most 4 GiB, got ${n} bytes`);
  out[0] = MARKER;
  for (let i = HEADER_DIGITS, v = n; i >= 1; i--, v >>>= 4) out[i] = HEX.charCodeAt(v & 15);
  out[HEADER_DIGITS + 1 + n] = LF;
  return out.subarray(0, n + FRAME_OVERHEAD);
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

/**
 * A push-based decoder of a stream that mixes length-prefixed frames ({@linkcode encodeFrame})
 * and NDJSON lines, for a receiver that announced {@linkcode FRAMING_LP1}. A frame's payload is
 * never scanned for newlines: its length says where it ends.
 *
 * - A frame longer than `maxLineBytes` is refused when its header is read, before a byte of it
 *   is held: reported as `RPC_LINE_TOO_LONG` and skipped by count (memory stays bounded by the
 *   limit, whatever length the header claims).
 * - A malformed header, or a frame not followed by `\n`, is reported as `RPC_BAD_FRAME`; bytes
 *   are then dropped up to the next `\n`, where decoding resumes.
 * - Lines are handled as by `NdjsonDecoder` (limit, UTF-8, `\r\n`, empty lines skipped).
 *
 * If `onLine` throws, the rest of the chunk is still framed (so the decoder stays aligned) but
 * not emitted, and the first exception propagates at the end of `push`.
 */
export class FrameDecoder {
  readonly #max: number;
  readonly #text = new TextDecoder("utf-8", { ignoreBOM: true });
  readonly #strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  #buf = new Uint8Array(INITIAL_CAPACITY);
  #len = 0;
  #state = State.Start;
  #discarding = false;
  #header = 0;
  #digits = 0;
  /** Payload bytes still to read (or skip) of the current frame. */
  #need = 0;
  #skipping = false;
  #lines = 0;
  #firstError: RpcError | undefined;
  #emitting = true;
  #thrown: unknown;
  #hasThrown = false;

  /**
   * @param options `maxLineBytes`: the longest accepted frame payload or line (default 16 MiB)
   * @throws {RangeError} when `maxLineBytes` is not a positive integer
   */
  constructor(options: { readonly maxLineBytes?: number } = {}) {
    const max = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    if (!Number.isSafeInteger(max) || max < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${max}`);
    }
    this.#max = max;
  }

  /** The longest accepted payload or line in bytes. */
  get maxLineBytes(): number {
    return this.#max;
  }

  /** Bytes of an unfinished frame or line currently held (never more than `maxLineBytes`). */
  get bufferedBytes(): number {
    return this.#len;
  }

  /** The size of the buffer held for unfinished frames and lines (it never passes the limit). */
  get capacityBytes(): number {
    return this.#buf.length;
  }

  /**
   * Decodes one chunk, calling `onLine` with the JSON text of each complete frame or line.
   *
   * @param chunk bytes in any split; not retained after the call
   * @param onLine receives each message's text
   * @param onError receives framing errors; when omitted, the first one is thrown
   */
  push(chunk: Uint8Array, onLine: LineCallback, onError?: DecodeErrorCallback): void {
    this.#firstError = undefined;
    this.#emitting = true;
    this.#hasThrown = false;
    const report = onError ?? this.#collect;
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      switch (this.#state) {
        case State.Start:
          if (chunk[pos] === MARKER) {
            this.#state = State.Header;
            this.#header = 0;
            this.#digits = 0;
            pos++;
          } else {
            this.#state = State.Line;
          }
          break;
        case State.Line:
          pos = this.#line(chunk, pos, onLine, report);
          break;
        case State.Header: {
          while (pos < end && this.#digits < HEADER_DIGITS) {
            const d = hexValue(chunk[pos]!);
            if (d < 0) break;
            this.#header = this.#header * 16 + d;
            this.#digits++;
            pos++;
          }
          if (this.#digits < HEADER_DIGITS) {
            if (pos === end) break;
            report(this.#badFrame("its header is not 8 lowercase hex digits after @"));
            this.#resync();
            break;
          }
          this.#need = this.#header;
          this.#len = 0;
          this.#skipping = this.#header > this.#max;
          if (this.#skipping) report(this.#tooLong(this.#header));
          this.#state = State.Payload;
          break;
        }
        case State.Payload: {
          const n = Math.min(this.#need, end - pos);
          if (this.#skipping) {
            this.#need -= n;
            pos += n;
          } else if (this.#len === 0 && n === this.#need && pos + n < end) {
            // The whole frame is in this chunk: decoded in place, no copy.
            this.#need = 0;
            this.#state = State.Term;
            if (chunk[pos + n] !== LF) {
              pos += n;
              break;
            }
            this.#lines++;
            this.#state = State.Start;
            this.#emit(chunk, pos, pos + n, onLine, report);
            pos += n + 1;
            break;
          } else {
            this.#reserve(this.#len + n);
            this.#buf.set(chunk.subarray(pos, pos + n), this.#len);
            this.#len += n;
            this.#need -= n;
            pos += n;
          }
          if (this.#need === 0) this.#state = State.Term;
          break;
        }
        case State.Term:
          if (chunk[pos] !== LF) {
            report(this.#badFrame("its payload is not followed by a newline"));
            this.#resync();
            break;
          }
          pos++;
          this.#lines++;
          this.#state = State.Start;
          if (!this.#skipping) this.#emit(this.#buf, 0, this.#len, onLine, report);
          this.#skipping = false;
          this.#len = 0;
          if (this.#buf.length > RELEASE_ABOVE) this.#buf = new Uint8Array(INITIAL_CAPACITY);
          break;
      }
    }
    if (this.#hasThrown) throw this.#thrown;
    if (onError === undefined && this.#firstError !== undefined) throw this.#firstError;
  }

  /** Ends the stream: an unfinished frame or line is reported as `RPC_TRUNCATED`. */
  end(onError?: DecodeErrorCallback): void {
    const held = this.#state !== State.Start && !(this.#state === State.Line && this.#discarding);
    const bytes = this.#len;
    this.#state = State.Start;
    this.#discarding = false;
    this.#skipping = false;
    this.#len = 0;
    if (this.#buf.length > INITIAL_CAPACITY) this.#buf = new Uint8Array(INITIAL_CAPACITY);
    if (!held) return;
    const error = new RpcError(
      "RPC_TRUNCATED",
      `the stream ended inside message ${this.#lines + 1} (${bytes} bytes held); it was ` +
        `dropped. The writer must end every frame and line with "\\n".`,
      { details: { line: this.#lines + 1, bytes } },
    );
    if (onError === undefined) throw error;
    onError(error);
  }

  readonly #collect = (error: RpcError): void => {
    this.#firstError ??= error;
  };

  /** An NDJSON line from `pos`; returns where the next unit starts (or the chunk's end). */
  #line(chunk: Uint8Array, pos: number, onLine: LineCallback, report: DecodeErrorCallback) {
    const lf = chunk.indexOf(LF, pos);
    if (lf === -1) {
      if (!this.#discarding) {
        const need = this.#len + (chunk.length - pos);
        if (need > this.#max) {
          report(this.#tooLong(need));
          this.#len = 0;
          this.#discarding = true;
        } else {
          this.#reserve(need);
          this.#buf.set(chunk.subarray(pos), this.#len);
          this.#len = need;
        }
      }
      return chunk.length;
    }
    this.#state = State.Start;
    if (this.#discarding) {
      this.#discarding = false;
      this.#lines++;
      return lf + 1;
    }
    this.#lines++;
    const total = this.#len + (lf - pos);
    if (total > this.#max) {
      report(this.#tooLong(total));
    } else if (this.#len === 0) {
      const e = lf > pos && chunk[lf - 1] === CR ? lf - 1 : lf;
      if (e > pos) this.#emit(chunk, pos, e, onLine, report);
    } else {
      this.#reserve(total);
      this.#buf.set(chunk.subarray(pos, lf), this.#len);
      const e = total > 0 && this.#buf[total - 1] === CR ? total - 1 : total;
      if (e > 0) this.#emit(this.#buf, 0, e, onLine, report);
    }
    this.#len = 0;
    if (this.#buf.length > RELEASE_ABOVE) this.#buf = new Uint8Array(INITIAL_CAPACITY);
    return lf + 1;
  }

  #emit(
    bytes: Uint8Array,
    s: number,
    e: number,
    onLine: LineCallback,
    report: DecodeErrorCallback,
  ) {
    if (e === s) return;
    const view = bytes.subarray(s, e);
    let text = this.#text.decode(view);
    if (text.includes("\uFFFD")) {
      try {
        text = this.#strict.decode(view);
      } catch {
        report(
          new RpcError(
            "RPC_INVALID_UTF8",
            `message ${this.#lines} is not valid UTF-8 (${e - s} bytes); it was skipped. ` +
              `The writer must encode messages as UTF-8.`,
            { details: { line: this.#lines, bytes: e - s } },
          ),
        );
        return;
      }
    }
    if (!this.#emitting) return;
    try {
      onLine(text);
    } catch (error) {
      this.#emitting = false;
      this.#hasThrown = true;
      this.#thrown = error;
    }
  }

  /** Drops bytes up to the next newline, where decoding resumes. */
  #resync(): void {
    this.#len = 0;
    this.#skipping = false;
    this.#state = State.Line;
    this.#discarding = true;
  }

  /** Grows `#buf` (doubling, capped at the limit) to hold `need <= maxLineBytes` bytes. */
  #reserve(need: number): void {
    if (need <= this.#buf.length) return;
    const grown = new Uint8Array(Math.min(Math.max(need, this.#buf.length * 2), this.#max));
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }

  #tooLong(seen: number): RpcError {
    const line = this.#lines + 1;
    return new RpcError(
      "RPC_LINE_TOO_LONG",
      `message ${line} is longer than maxLineBytes (${this.#max} bytes; ${seen} announced or ` +
        `seen); it was skipped without being held. Send smaller messages or raise maxLineBytes.`,
      { details: { line, maxLineBytes: this.#max, seenBytes: seen } },
    );
  }

  #badFrame(problem: string): RpcError {
    const line = this.#lines + 1;
    return new RpcError(
      "RPC_BAD_FRAME",
      `message ${line} is a malformed frame: ${problem}; bytes were dropped up to the next ` +
        `newline. A frame is "@", 8 lowercase hex digits of the payload's byte length, the ` +
        `payload, "\\n".`,
      { details: { line } },
    );
  }
}
