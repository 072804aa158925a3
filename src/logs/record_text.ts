import type { LogLevel, LogRecord } from "@logtape/logtape";
import { escapeControl } from "../runtime/line_splitter.ts";

/** Longest text kept in one stored field: 10 MiB of UTF-8. Longer text is cut with a marker. */
export const MAX_TEXT_BYTES = 10 * 1024 * 1024;

/** Log levels, lowest first; a level's index is the number stored in the database. */
export const LEVEL_NAMES: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
];

const LEVEL_NUMBERS: Readonly<Record<string, number>> = Object.fromEntries(
  LEVEL_NAMES.map((name, i) => [name, i]),
);

/**
 * The stored number of a level (`trace` 0 ... `fatal` 5); also accepts `warn`. Unknown names
 * are `info` (2).
 */
export function levelNumber(level: string): number {
  return LEVEL_NUMBERS[level] ?? (level === "warn" ? 3 : 2);
}

/** The level name of a stored number (clamped to `trace`..`fatal`). */
export function levelName(n: number): LogLevel {
  return LEVEL_NAMES[Math.max(0, Math.min(5, Math.trunc(n)))]!;
}

const encoder = new TextEncoder();

/**
 * Makes text safe to store and print: lone surrogates become U+FFFD, control characters and ANSI
 * escapes are escaped (`\x1b` becomes the six characters `\u001b`; tab and newline are kept),
 * and text longer than `maxBytes` of UTF-8 is cut at a character boundary and marked
 * `…[truncated N bytes]`.
 *
 * @example
 * ```ts
 * sanitizeText("\x1b[31mred\x1b[0m"); // "\\u001b[31mred\\u001b[0m"
 * ```
 */
export function sanitizeText(text: string, maxBytes: number = MAX_TEXT_BYTES): string {
  const wellFormed = text.isWellFormed() ? text : text.toWellFormed();
  // Testing first is cheaper than a replace that finds nothing (the usual case).
  const escaped = HAS_CONTROL.test(wellFormed) ? escapeControl(wellFormed) : wellFormed;
  return truncateUtf8(escaped, maxBytes);
}

/** The characters `escapeControl` escapes (the same class, not global). */
// deno-lint-ignore no-control-regex
const HAS_CONTROL = /[\x00-\x08\x0b-\x1f\x7f\x9b]/;

/** Cuts `text` to at most `maxBytes` of UTF-8 (plus the marker), at a character boundary. */
export function truncateUtf8(text: string, maxBytes: number = MAX_TEXT_BYTES): string {
  // A UTF-16 code unit is at most 3 bytes of UTF-8, so short text needs no counting.
  if (text.length * 3 <= maxBytes) return text;
  const bytes = encoder.encode(text);
  if (bytes.length <= maxBytes) return text;
  let cut = maxBytes;
  while (cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--; // back to a character start
  const kept = new TextDecoder().decode(bytes.subarray(0, cut));
  return `${kept} …[truncated ${bytes.length - cut} bytes]`;
}

const lenientDecoder = new TextDecoder("utf-8", { fatal: false });

/** Decodes bytes as UTF-8, replacing invalid sequences with U+FFFD (never throws). */
export function decodeText(bytes: Uint8Array): string {
  return lenientDecoder.decode(bytes);
}

/** A value inside a message, as text: strings as they are, everything else as compact JSON. */
export function valueText(value: unknown): string {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
    case "boolean":
    case "bigint":
    case "undefined":
    case "symbol":
      return String(value);
    case "function":
      return `[function ${value.name || "anonymous"}]`;
  }
  if (value === null) return "null";
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (value instanceof Date) {
    return Number.isNaN(value.getTime()) ? "Invalid Date" : value.toISOString();
  }
  return safeJson(value);
}

/**
 * The message of a LogTape record as plain text (its template with the values filled in).
 * Plugin records (`"{message}"` with a string) cost no copy.
 */
export function renderMessage(record: LogRecord): string {
  const parts = record.message;
  if (parts.length === 1) return valueText(parts[0]);
  if (parts.length === 3 && parts[0] === "" && parts[2] === "" && typeof parts[1] === "string") {
    return parts[1];
  }
  let text = "";
  for (let i = 0; i < parts.length; i++) text += valueText(parts[i]);
  return text;
}

/**
 * JSON of any value that never throws: `bigint` becomes a string, `Error` an object with name,
 * message (and code, cause), a cycle `"[Circular]"`, functions and symbols are left out like
 * `JSON.stringify` does, `Uint8Array` its UTF-8 text.
 */
export function safeJson(value: unknown): string {
  if (!needsReplacer(value)) {
    try {
      return JSON.stringify(value) ?? "null";
    } catch { /* bigint or cycle: the careful path below */ }
  }
  const seen = new WeakSet<object>();
  try {
    return JSON.stringify(value, function (this: unknown, _key, v: unknown) {
      if (typeof v === "bigint") return v.toString();
      if (v === null || typeof v !== "object") return v;
      if (seen.has(v)) return "[Circular]";
      seen.add(v);
      if (v instanceof Error) {
        const out: Record<string, unknown> = { name: v.name, message: v.message };
        const code = (v as { code?: unknown }).code;
        if (code !== undefined) out.code = code;
        if (v.cause !== undefined) out.cause = v.cause;
        return out;
      }
      if (v instanceof Uint8Array) return decodeText(v);
      if (v instanceof Map) return Object.fromEntries(v);
      if (v instanceof Set) return [...v];
      return v;
    }) ?? "null";
  } catch (e) {
    return JSON.stringify({ unserializable: String(e) });
  }
}

/** Whether a value holds (at its top level) something plain `JSON.stringify` would mangle. */
function needsReplacer(value: unknown): boolean {
  if (value === null || typeof value !== "object") return typeof value === "bigint";
  if (value instanceof Error || value instanceof Uint8Array || value instanceof Map) return true;
  if (value instanceof Set) return true;
  for (const k in value) {
    const v = (value as Record<string, unknown>)[k];
    if (
      typeof v === "bigint" || v instanceof Error || v instanceof Uint8Array || v instanceof Map ||
      v instanceof Set
    ) return true;
  }
  return false;
}

/**
 * The plugin a record belongs to: its `plugin` property when that is a string, else the third
 * part of a `["plugsconc", "plugin", <name>]` category.
 */
export function recordPlugin(record: LogRecord): string | null {
  const p = record.properties.plugin;
  if (typeof p === "string") return p;
  const c = record.category;
  return c.length >= 3 && c[1] === "plugin" ? c[2]! : null;
}

const categoryTexts = new WeakMap<readonly string[], string>();

/** A category path as dotted text; a logger passes the same array every time, so remember it. */
export function categoryText(category: readonly string[]): string {
  let text = categoryTexts.get(category);
  if (text === undefined) {
    text = category.join(".");
    categoryTexts.set(category, text);
  }
  return text;
}

/**
 * The properties of a record as JSON, without what has a column of its own: `plugin` (when it
 * is the record's plugin) and, for `"{message}"` records, `message`.
 */
export function propertiesJson(record: LogRecord, plugin: string | null): string {
  const props = record.properties;
  const dropMessage = record.rawMessage === "{message}";
  let hasOwnColumn = false;
  for (const k in props) {
    if ((k === "plugin" && props[k] === plugin) || (k === "message" && dropMessage)) {
      hasOwnColumn = true;
      break;
    }
  }
  if (!hasOwnColumn) return escapeJsonC1(safeJson(props));
  const rest: Record<string, unknown> = {};
  for (const k in props) {
    if ((k === "plugin" && props[k] === plugin) || (k === "message" && dropMessage)) continue;
    rest[k] = props[k];
  }
  return escapeJsonC1(safeJson(rest));
}

const JSON_C1 = /[\x7f-\x9f]/g;
const HAS_JSON_C1 = /[\x7f-\x9f]/;

/**
 * JSON.stringify escapes C0 controls but leaves DEL and the C1 controls (0x9b is CSI, which
 * some terminals obey) as they are: escape them too, so that a stored property printed by
 * `logs query` cannot drive the terminal. The JSON still parses to the same value.
 */
function escapeJsonC1(json: string): string {
  if (!HAS_JSON_C1.test(json)) return json;
  return json.replace(JSON_C1, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}
