import { escapeControl } from "./line_splitter.ts";

/** A log record made from plugin output, cut to its size cap by {@link capRecord}. */
export interface CappedRecord {
  /** The message, control characters escaped, cut (and marked) when it was too long. */
  readonly message: string;
  /**
   * The fields that fit, in their order, plus `message_length` when the message was cut and
   * `fields_truncated` (bytes left out, at least) and `fields_dropped` (their names, cut) when
   * fields were left out.
   */
  readonly fields: Record<string, unknown>;
  /** Size of the record: the message plus the JSON of `fields`, in UTF-16 code units. */
  readonly bytes: number;
  /**
   * Size of what the plugin sent, as far as it was measured: the whole message and every
   * field, those left out included (each at least as big as its walk saw before it stopped).
   */
  readonly sentBytes: number;
}

/** Room kept for the notes about what was cut (and small fields) when the message is long. */
function noteRoom(maxBytes: number): number {
  return Math.min(1024, Math.floor(maxBytes / 4));
}

/**
 * The longest message {@link capRecord} keeps for a cap of `maxBytes`: what is left after the
 * room for fields and notes. A stderr line splitter cuts below this, so that its own marker
 * survives.
 */
export function messageRoom(maxBytes: number): number {
  return maxBytes - noteRoom(maxBytes);
}

const MAX_DEPTH = 64;
const MAX_DROPPED_NAMES = 10;
const MAX_NAME = 64;
// deno-lint-ignore no-control-regex -- what JSON.stringify escapes (and surrogates, to be exact)
const JSON_ESCAPED = /["\\\x00-\x1f\ud800-\udfff]/;

function stringJsonLength(s: string, limit: number): number {
  // Past the limit the exact length does not matter: reading it costs nothing, scanning would.
  if (s.length + 2 > limit) return s.length + 2;
  return JSON_ESCAPED.test(s) ? JSON.stringify(s).length : s.length + 2;
}

/**
 * The length of `JSON.stringify(value)` without building it, exact for JSON data (what
 * `JSON.parse` makes), as long as it is at most `limit`; past the limit it stops and returns a
 * number above it (the length seen so far: a lower bound). The work is bounded by `limit`
 * (every value adds at least one character) and by a depth of 64 (deeper counts as too big),
 * whatever the value's size: a long string costs one length read.
 *
 * @example
 * ```ts
 * jsonLength({ a: [1, "x"] }, 1024); // 13, the length of '{"a":[1,"x"]}'
 * jsonLength({ blob: "x".repeat(8e6) }, 65536) > 65536; // true, at once
 * ```
 */
export function jsonLength(value: unknown, limit: number, depth = 0): number {
  switch (typeof value) {
    case "string":
      return stringJsonLength(value, limit);
    case "number":
      return Number.isFinite(value) ? String(value).length : 4;
    case "boolean":
      return value ? 4 : 5;
    case "bigint":
      return String(value).length + 2; // the sinks store it as a string
    case "undefined":
    case "function":
    case "symbol":
      return 4; // "null" in an array; objects leave such properties out (see below)
  }
  if (value === null) return 4;
  if (depth >= MAX_DEPTH) return limit + 1;
  let n = 2;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      n += (i > 0 ? 1 : 0) + jsonLength(value[i], limit - n, depth + 1);
      if (n > limit) return n;
    }
    return n;
  }
  let first = true;
  const o = value as Record<string, unknown>;
  for (const key in o) {
    const v = o[key];
    if (v === undefined || typeof v === "function" || typeof v === "symbol") continue;
    n += (first ? 0 : 1) + stringJsonLength(key, limit - n) + 1;
    first = false;
    if (n > limit) return n;
    n += jsonLength(v, limit - n, depth + 1);
    if (n > limit) return n;
  }
  return n;
}

/**
 * Cuts `text` to at most `max` UTF-16 code units, marked with the original length `total`,
 * without splitting a surrogate pair or (in escaped text) a `\uXXXX` escape. Only the kept
 * part is copied.
 */
function cut(text: string, max: number, total = text.length): string {
  const marker = ` …[truncated, ${total} characters in all]`;
  let end = Math.max(0, max - marker.length);
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--; // a high surrogate without its pair
  const escape = text.lastIndexOf("\\u", end - 1);
  if (escape >= 0 && escape > end - 6) end = escape;
  return text.slice(0, end) + marker;
}

/**
 * Makes a record of plugin output fit `maxBytes` (the message plus the JSON of its fields): a
 * longer message is cut *before* it is escaped (only what is kept is copied) and marked with
 * its original length; fields are kept in order while they fit, the others are left out and
 * named in a note (`fields_truncated: <bytes>`, `fields_dropped: [names]`). Nothing unbounded
 * is serialised: sizes come from {@link jsonLength}, which stops at the limit.
 *
 * Sizes count UTF-16 code units (bytes for ASCII; at most 3 bytes each in UTF-8). A log
 * budget charges `sentBytes`: what the plugin made the host read, not only what is kept.
 *
 * @param message the message as the plugin sent it (not yet escaped)
 * @param fields its structured fields (from `JSON.parse`), if any
 * @param maxBytes the cap (`max_record_bytes`), at least 256
 * @throws {RangeError} when `maxBytes` is below 256
 */
export function capRecord(
  message: string,
  fields: Readonly<Record<string, unknown>> | undefined,
  maxBytes: number,
): CappedRecord {
  if (!(Number.isInteger(maxBytes) && maxBytes >= 256)) {
    throw new RangeError(`maxBytes must be an integer >= 256, got ${maxBytes}`);
  }
  const room = messageRoom(maxBytes);
  let text = message.length > room ? message.slice(0, room) : message;
  text = escapeControl(text);
  // Escaping can make it longer (up to 6x); cut again, now from bounded text.
  if (text.length > room || message.length > room) text = cut(text, room, message.length);
  const out: Record<string, unknown> = {};
  let used = text.length + 2; // "{}"
  if (message.length > room) {
    out.message_length = message.length;
    used += 25;
  }
  const sent = message.length + 2;
  if (fields === undefined) return { message: text, fields: out, bytes: used, sentBytes: sent };
  // The notes about left-out fields always fit: fields may use all but their room (a part of
  // the room the message leaves).
  const notes = Math.min(256, Math.floor(noteRoom(maxBytes) / 2));
  let droppedBytes = 0;
  let keptBytes = 0;
  let droppedCount = 0;
  const names: string[] = [];
  let namesRoom = notes - 48; // `,"fields_truncated":<n>,"fields_dropped":[]` and a count
  for (const key in fields) {
    const value = fields[key];
    if (value === undefined || typeof value === "function" || typeof value === "symbol") continue;
    const limit = maxBytes - notes - used;
    const keyLength = stringJsonLength(key, limit) + 2; // "key": and a comma
    const size = keyLength <= limit ? jsonLength(value, limit - keyLength) + keyLength : keyLength;
    if (size <= limit) {
      out[key] = value;
      used += size;
      keptBytes += size;
      continue;
    }
    droppedBytes += size;
    droppedCount++;
    const name = key.length > MAX_NAME ? key.slice(0, MAX_NAME) + "…" : key;
    const nameLength = stringJsonLength(name, MAX_NAME * 6) + 1;
    if (names.length < MAX_DROPPED_NAMES && nameLength <= namesRoom) {
      names.push(name);
      namesRoom -= nameLength;
    }
  }
  if (droppedCount > 0) {
    out.fields_truncated = droppedBytes;
    out.fields_dropped = droppedCount > names.length
      ? [...names, `…${droppedCount - names.length} more`]
      : names;
    used += 40 + jsonLength(out.fields_dropped, notes);
  }
  return { message: text, fields: out, bytes: used, sentBytes: sent + keptBytes + droppedBytes };
}

/** How much of a value a plugin announced is quoted in a host message (a name, a version). */
export const QUOTE = 200;

/**
 * `JSON.stringify(value)` for a host message, at most about {@link QUOTE} characters: a longer
 * string is cut (only the kept part is copied), a bigger object is only named.
 *
 * @example
 * ```ts
 * quote("cat"); // '"cat"'
 * quote("x".repeat(1e7)); // '"xxx…xxx"…' (200 x)
 * ```
 */
export function quote(value: unknown): string {
  if (typeof value === "string" && value.length > QUOTE) {
    return JSON.stringify(value.slice(0, QUOTE)) + "…";
  }
  if (value !== null && typeof value === "object" && jsonLength(value, QUOTE) > QUOTE) {
    return Array.isArray(value) ? "a long JSON array" : "a big JSON object";
  }
  return String(JSON.stringify(value));
}

/** `text` cut to `max` characters and marked with its length; only the kept part is copied. */
export function clip(text: string, max: number): string {
  return text.length > max ? cut(text, max) : text;
}
