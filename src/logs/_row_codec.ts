/**
 * The rows the sink hands its writer: the {@link encodeRow} wire format (one string per
 * batch), its decoder, and {@link FlatRows}. Private to `src/logs/`.
 *
 * @module
 */

/**
 * Rows in the shape the sink sends to its writer: six values per record, flat —
 * `ts, level number, dotted category, plugin or null, message, properties JSON`.
 */
export type FlatRows = readonly unknown[];

/** Values per record in {@link FlatRows}. */
export const ROW_WIDTH = 6;

/**
 * One record in the sink's wire format to its writer: `ts,level,` then four length-prefixed
 * texts `<length>:<text>` (category, plugin or `-:` for none, message, properties JSON), lengths
 * in UTF-16 code units. A batch is these concatenated: one string crosses to the worker as one
 * copy instead of a structured clone of thousands of values, and nothing needs escaping.
 */
export function encodeRow(
  ts: number,
  level: number,
  category: string,
  plugin: string | null,
  message: string,
  properties: string,
): string {
  return `${ts},${level},${category.length}:${category}${plugin === null ? "-" : plugin.length}:${
    plugin ?? ""
  }${message.length}:${message}${properties.length}:${properties}`;
}

/**
 * Decodes a batch of {@link encodeRow} records into `into` (as {@link FlatRows}), or hands each
 * row to a function.
 *
 * @returns the number of records
 * @throws {SyntaxError} when the batch is malformed
 */
export function decodeRows(batch: string, into: unknown[] | PutRow): number {
  const put: PutRow = Array.isArray(into)
    ? (into.length = 0, (...row) => void into.push(...row))
    : into;
  let pos = 0;
  const end = batch.length;
  const number = (stop: string): number => {
    const i = batch.indexOf(stop, pos);
    if (i < 0) throw new SyntaxError(`malformed log batch at ${pos}`);
    const n = Number(batch.slice(pos, i));
    pos = i + 1;
    return n;
  };
  const text = (): string | null => {
    const i = batch.indexOf(":", pos);
    if (i < 0) throw new SyntaxError(`malformed log batch at ${pos}`);
    if (i === pos + 1 && batch.charCodeAt(pos) === 0x2d /* - */) {
      pos = i + 1;
      return null;
    }
    const len = Number(batch.slice(pos, i));
    if (!(len >= 0) || i + 1 + len > end) throw new SyntaxError(`malformed log batch at ${pos}`);
    pos = i + 1 + len;
    return batch.slice(i + 1, pos);
  };
  let count = 0;
  while (pos < end) {
    put(number(","), number(","), text(), text(), text(), text());
    count++;
  }
  return count;
}

/** Takes one decoded row (see {@link decodeRows}). */
export type PutRow = (
  ts: unknown,
  level: unknown,
  category: unknown,
  plugin: unknown,
  message: unknown,
  properties: unknown,
) => void;
