import type { LogRecord } from "@logtape/logtape";

/** The fixed part of a queued record: the record object, its category, timestamp, level. */
const RECORD_BYTES = 256;
/** Each value inside the properties: its slot, its object or number. */
const VALUE_BYTES = 16;
/** Values looked at per record; past them (or too deep) the rest counts as {@link UNSEEN_BYTES}. */
const MAX_VALUES = 10_000;
const MAX_DEPTH = 32;
const UNSEEN_BYTES = 1024 * 1024;

let left = 0;

function valueBytes(v: unknown, depth: number): number {
  if (--left < 0) return 0;
  if (typeof v === "string") return VALUE_BYTES + v.length;
  if (v === null || typeof v !== "object") return VALUE_BYTES;
  if (depth >= MAX_DEPTH) {
    left = -1;
    return 0;
  }
  if (ArrayBuffer.isView(v)) return VALUE_BYTES + v.byteLength;
  let n = VALUE_BYTES;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length && left >= 0; i++) n += valueBytes(v[i], depth + 1);
    return n;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) {
    n += k.length + valueBytes(o[k], depth + 1);
    if (left < 0) break;
  }
  return n;
}

/**
 * A bound of a queued record's memory for the store sink's `maxQueueBytes`: a fixed part, the
 * raw message, and every string and key of the properties at any depth (a plugin's fields
 * arrive nested). The walk is bounded: at most 10,000 values and 32 levels are looked at (a
 * string costs one length read, whatever its size); a record with more counts 1 MiB more, so
 * that a shape the walk cannot see through never makes the bound lax. Never throws (a getter
 * that throws counts as unseen).
 */
export function estimateRecordBytes(record: LogRecord): number {
  const raw = record.rawMessage;
  let n = RECORD_BYTES + (typeof raw === "string" ? raw.length : 0);
  left = MAX_VALUES;
  try {
    const props = record.properties;
    for (const key in props) {
      n += key.length + valueBytes(props[key], 1);
      if (left < 0) break;
    }
  } catch {
    left = -1;
  }
  return left < 0 ? n + UNSEEN_BYTES : n;
}
