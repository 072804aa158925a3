/**
 * The line-start reader of the log gate (`log_gate.ts`): which of the SDK's forms a line of a
 * plugin's stdout begins with, read byte by byte, holding nothing but counters. @module
 */
import type { Phase } from "./_log_gate_types.ts";

const MINUS = 0x2d;
const COMMA = 0x2c;
const ZERO = 0x30;
const NINE = 0x39;
const encoder = new TextEncoder();
/**
 * How the SDK begins every response and every request it writes (`JSON.stringify` keeps the
 * key order it was given: `{ jsonrpc, id, result | error }`, `{ jsonrpc, id, method, params }`).
 */
const ID_PREFIX = encoder.encode('{"jsonrpc":"2.0","id":');
/** How the SDK begins every `$/log` line. */
const LOG_PREFIX = encoder.encode('{"jsonrpc":"2.0","method":"$/log","params":');
/** How the SDK begins every `$/chunk` line, up to the stream's request id (a number). */
const CHUNK_PREFIX = encoder.encode('{"jsonrpc":"2.0","method":"$/chunk","params":{"request":');
const PREFIXES = [LOG_PREFIX, ID_PREFIX, CHUNK_PREFIX];
/** The keys after the id (and its comma) that make a line in the id form a response. */
const RESULT_KEY = encoder.encode('"result":');
const ERROR_KEY = encoder.encode('"error":');
/** The most digits an id may have (the SDK numbers its requests from 1). */
const MAX_ID_DIGITS = 16;
/** The most bytes held back at a line start while it is read (prefix, id, comma, key). */
export const MAX_HELD = Math.max(
  ID_PREFIX.length + 1 + MAX_ID_DIGITS + 1 + RESULT_KEY.length,
  CHUNK_PREFIX.length + 1 + MAX_ID_DIGITS + 1,
);

/** What a line start read so far is. */
export type Form =
  /** `{"jsonrpc":"2.0","method":"$/log","params":` */
  | "log"
  /** `{"jsonrpc":"2.0","id":` and a numeric id, then `,"result":` or `,"error":` */
  | "response"
  /** `{"jsonrpc":"2.0","id":` and a numeric id and a comma, then anything else (a request) */
  | "request"
  /** `{"jsonrpc":"2.0","method":"$/chunk","params":{"request":`, a numeric id, a comma */
  | "chunk"
  /** anything else (other notifications, other key orders, ids that are not numbers, garbage) */
  | "other";

/**
 * Reads a line start byte by byte against the SDK's forms. {@linkcode LineStart.accept} says
 * whether a byte goes on with a form; once it says no, or {@linkcode LineStart.complete} is
 * true, {@linkcode LineStart.form} is what the line is. {@linkcode LineStart.reset} for the next.
 */
export class LineStart {
  /** Bytes of the line start read so far (each one `accept` took). */
  matched = 0;
  #phase: Phase = "prefix";
  #prefix: Uint8Array = LOG_PREFIX;
  #idNegative = false;
  #idDigits = 0;
  #id = 0;
  #key: Uint8Array = RESULT_KEY;
  #keyMatched = 0;

  /** Whether the bytes read so far end a form: nothing after them changes what the line is. */
  get complete(): boolean {
    return (this.#phase === "prefix" && this.#prefix === LOG_PREFIX &&
      this.matched === LOG_PREFIX.length) ||
      (this.#phase === "key" && this.#keyMatched === this.#key.length) ||
      this.#phase === "chunk";
  }

  /** What the line is, once `accept` said no or `complete` is true. */
  get form(): Form {
    const phase = this.#phase;
    if (phase === "key") return this.complete ? "response" : "request";
    if (phase === "chunk") return "chunk";
    // The id phase: not a number the SDK would write.
    return phase === "prefix" && this.complete ? "log" : "other";
  }

  /** The id read (`response`, `request`: the message's id; `chunk`: the stream's request). */
  get id(): number {
    return this.#idNegative ? -this.#id : this.#id;
  }

  /** Starts over, for the next line. */
  reset(): void {
    this.matched = 0;
    this.#phase = "prefix";
    this.#prefix = LOG_PREFIX;
  }

  /** Reads the next byte of a line start: whether it goes on with the form being matched. */
  accept(byte: number): boolean {
    if (!this.#accept(byte)) return false;
    this.matched++;
    return true;
  }

  #accept(byte: number): boolean {
    switch (this.#phase) {
      case "prefix":
        if (this.#prefix[this.matched] !== byte && !this.#switchPrefix(byte)) return false;
        if (
          (this.#prefix === ID_PREFIX || this.#prefix === CHUNK_PREFIX) &&
          this.matched + 1 === this.#prefix.length
        ) {
          this.#phase = "id";
          this.#idNegative = false;
          this.#idDigits = 0;
          this.#id = 0;
        }
        return true;
      case "id":
        if (byte >= ZERO && byte <= NINE) {
          // At most MAX_ID_DIGITS digits, and no leading zero (JSON has none).
          if (this.#idDigits === MAX_ID_DIGITS || (this.#idDigits > 0 && this.#id === 0)) {
            return false;
          }
          this.#idDigits++;
          this.#id = this.#id * 10 + (byte - ZERO);
          return true;
        }
        if (byte === MINUS && this.#idDigits === 0 && !this.#idNegative) {
          this.#idNegative = true;
          return true;
        }
        if (byte === COMMA && this.#idDigits > 0 && this.#prefix === CHUNK_PREFIX) {
          this.#phase = "chunk";
          return true;
        }
        if (byte === COMMA && this.#idDigits > 0) {
          this.#phase = "key";
          this.#key = RESULT_KEY;
          this.#keyMatched = 0;
          return true;
        }
        return false;
      case "key":
        if (this.#keyMatched === 1 && byte === ERROR_KEY[1]) this.#key = ERROR_KEY;
        if (this.#key[this.#keyMatched] !== byte) return false;
        this.#keyMatched++;
        return true;
      case "chunk":
        return false;
    }
  }

  /** Another prefix that agrees with the bytes matched so far and goes on with `byte`. */
  #switchPrefix(byte: number): boolean {
    const m = this.matched;
    for (const p of PREFIXES) {
      if (p === this.#prefix || p.length <= m || p[m] !== byte) continue;
      let same = true;
      for (let i = 0; i < m && same; i++) same = p[i] === this.#prefix[i];
      if (same) {
        this.#prefix = p;
        return true;
      }
    }
    return false;
  }
}
