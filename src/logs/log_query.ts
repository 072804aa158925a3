/**
 * Reading records back: what a query selects ({@link LogQuery}), what it returns
 * ({@link LogEntry}), the SQL that selects it ({@link querySql}) and the rows made entries
 * ({@link toEntry}); `LogStore.query` runs them.
 *
 * @module
 */
import type { LogLevel } from "@logtape/logtape";
import { levelName, levelNumber } from "./record_text.ts";

/** A stored record. */
export interface LogEntry {
  /** Position in the store; increases with every record, never reused. */
  readonly seq: number;
  /** Milliseconds since the epoch. */
  readonly ts: number;
  readonly level: LogLevel;
  /** Dotted category path, e.g. `plugsconc.plugin.cat`. */
  readonly category: string;
  readonly plugin: string | null;
  readonly message: string;
  readonly properties: Readonly<Record<string, unknown>>;
}

/** What `LogStore.query` selects; every field narrows the result. */
export interface LogQuery {
  /** Only records of this plugin (or of any of these). */
  readonly plugin?: string | readonly string[];
  /** Only records at this level or above. */
  readonly minLevel?: LogLevel | "warn";
  /** Only records at or after this time (ms since the epoch, or a Date). */
  readonly since?: number | Date;
  /** Only records before this time (ms since the epoch, or a Date). */
  readonly until?: number | Date;
  /**
   * Only records whose message or properties JSON contain this text (ASCII case-insensitive;
   * `%` and `_` match themselves).
   */
  readonly grep?: string;
  /** Only records whose category is this dotted path or below it, e.g. `plugsconc.host`. */
  readonly category?: string;
  /**
   * Only records after this sequence number, oldest first (for `tail` and paging). Without it
   * the result is the newest `limit` matches, also oldest first.
   */
  readonly afterSeq?: number;
  /** At most this many records. Default 100; at most 100,000. */
  readonly limit?: number;
}

const MAX_LIMIT = 100_000;

/** A query as SQL: the statement and its arguments; `newestFirst`: the rows come newest first. */
export interface QuerySql {
  readonly sql: string;
  readonly args: readonly (string | number)[];
  readonly newestFirst: boolean;
}

/**
 * The SQL that selects what `filter` asks for: the newest `limit` records (newest first), or
 * with `afterSeq` the first `limit` after it (oldest first); `undefined` when nothing can
 * match.
 *
 * @throws {RangeError} for a bad limit, level, time or `afterSeq`
 */
export function querySql(filter: LogQuery): QuerySql | undefined {
  const limit = filter.limit ?? 100;
  if (!(Number.isInteger(limit) && limit >= 1 && limit <= MAX_LIMIT)) {
    throw new RangeError(`limit must be an integer from 1 to ${MAX_LIMIT}, got ${limit}`);
  }
  const where: string[] = [];
  const args: (string | number)[] = [];
  if (filter.plugin !== undefined) {
    const names = typeof filter.plugin === "string" ? [filter.plugin] : [...filter.plugin];
    if (names.length === 0) return undefined;
    where.push(`plugin IN (${names.map(() => "?").join(", ")})`);
    args.push(...names);
  }
  if (filter.minLevel !== undefined) {
    const n = levelNumber(filter.minLevel);
    if (
      !["trace", "debug", "info", "warning", "warn", "error", "fatal"].includes(filter.minLevel)
    ) {
      throw new RangeError(`unknown log level ${JSON.stringify(filter.minLevel)}`);
    }
    // The literal term lets SQLite use the partial index of warnings and worse.
    if (n >= 3) where.push("level >= 3");
    if (n > 0) {
      where.push("level >= ?");
      args.push(n);
    }
  }
  if (filter.since !== undefined) {
    where.push("ts >= ?");
    args.push(toMs(filter.since, "since"));
  }
  if (filter.until !== undefined) {
    where.push("ts < ?");
    args.push(toMs(filter.until, "until"));
  }
  if (filter.category !== undefined && filter.category !== "") {
    where.push("(category = ? OR category LIKE ? ESCAPE '\\')");
    args.push(filter.category, escapeLike(filter.category) + ".%");
  }
  if (filter.grep !== undefined && filter.grep !== "") {
    const pattern = `%${escapeLike(filter.grep)}%`;
    where.push("(message LIKE ? ESCAPE '\\' OR properties LIKE ? ESCAPE '\\')");
    args.push(pattern, pattern);
  }
  const after = filter.afterSeq;
  if (after !== undefined) {
    if (!Number.isFinite(after)) throw new RangeError(`afterSeq must be a number, got ${after}`);
    where.push("seq > ?");
    args.push(Math.floor(after));
  }
  const sql = "SELECT seq, ts, level, category, plugin, message, properties FROM logs" +
    (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
    ` ORDER BY seq ${after === undefined ? "DESC" : "ASC"} LIMIT ?`;
  args.push(limit);
  return { sql, args, newestFirst: after === undefined };
}

/** A row of the `logs` table as a {@link LogEntry}; properties that are not a JSON object are kept. */
export function toEntry(row: Record<string, unknown>): LogEntry {
  let properties: Record<string, unknown>;
  try {
    const parsed = JSON.parse(String(row.properties ?? "{}"));
    properties = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
      ? parsed
      : { value: parsed };
  } catch {
    properties = { unparsed: String(row.properties) };
  }
  return {
    seq: Number(row.seq),
    ts: Number(row.ts),
    level: levelName(Number(row.level)),
    category: String(row.category),
    plugin: row.plugin === null || row.plugin === undefined ? null : String(row.plugin),
    message: String(row.message),
    properties,
  };
}

/** Escapes `\`, `%` and `_` for `LIKE ... ESCAPE '\'`. */
export function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function toMs(value: number | Date, name: string): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (!Number.isFinite(ms)) throw new RangeError(`${name} must be a time, got ${String(value)}`);
  return ms;
}
