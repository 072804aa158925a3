import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { AppendResult } from "./log_store.ts";
import { storeError } from "./log_store_error.ts";
import { MAX_TEXT_BYTES, sanitizeText, truncateUtf8 } from "./record_text.ts";
import { type PutRow, ROW_WIDTH } from "./_row_codec.ts";
import { rollback } from "./_rollback.ts";

/** Rows per multi-row INSERT: far fewer JS-to-SQLite crossings than one statement per row. */
const CHUNK = 128;

/**
 * The write transaction of a `LogStore`: rows in multi-row INSERTs of {@link CHUNK}, sanitized
 * on the way (off the logging call path: in the sink's worker), plus the persistent count of
 * dropped records. Private to `src/logs/`.
 */
export class RowWriter {
  readonly #db: DatabaseSync;
  readonly #path: string;
  readonly #args: unknown[] = new Array(CHUNK * ROW_WIDTH);
  readonly #names = new NameCache();
  #many: StatementSync | undefined;
  #one: StatementSync | undefined;
  #drop: StatementSync | undefined;

  /** @param path the database file, for error messages */
  constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.#path = path;
  }

  /**
   * One write transaction: `fill` puts rows, and `dropped` is added to the count of dropped
   * records. Nothing is written when it throws.
   *
   * @throws {LogStoreError} what {@link storeError} makes of the failure
   */
  write(dropped: number, fill: (put: PutRow) => void): AppendResult {
    const db = this.#db;
    const args = this.#args;
    let lastSeq = 0;
    let count = 0;
    let k = 0;
    const put: PutRow = (ts, level, category, plugin, message, properties) => {
      const t = Number(ts);
      args[k++] = Number.isFinite(t) ? Math.trunc(t) : Date.now();
      const l = Number(level);
      args[k++] = l >= 0 && l <= 5 ? Math.trunc(l) : 2;
      args[k++] = this.#names.get(typeof category === "string" ? category : String(category ?? ""));
      args[k++] = typeof plugin === "string" ? this.#names.get(plugin) : null;
      args[k++] = sanitizeText(typeof message === "string" ? message : String(message ?? ""));
      args[k++] = propertiesText(properties);
      count++;
      if (k === args.length) {
        this.#many ??= db.prepare(insertSql(CHUNK));
        lastSeq = Number(this.#many.run(...(args as [string])).lastInsertRowid);
        k = 0;
      }
    };
    try {
      db.exec("BEGIN IMMEDIATE");
      fill(put);
      if (k > 0) {
        const one = this.#one ??= db.prepare(insertSql(1));
        for (let i = 0; i < k; i += ROW_WIDTH) {
          lastSeq = Number(one.run(...(args.slice(i, i + ROW_WIDTH) as [string])).lastInsertRowid);
        }
      }
      if (dropped > 0) {
        this.#drop ??= db.prepare(
          "INSERT INTO meta (key, value) VALUES ('dropped', ?) " +
            "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
        );
        this.#drop.run(dropped);
      }
      db.exec("COMMIT");
    } catch (e) {
      rollback(db);
      throw storeError(e, this.#path, "write to");
    } finally {
      args.fill(undefined);
    }
    return { count, lastSeq };
  }
}

function insertSql(rows: number): string {
  return "INSERT INTO logs (ts, level, category, plugin, message, properties) VALUES " +
    Array.from({ length: rows }, () => "(?, ?, ?, ?, ?, ?)").join(", ");
}

/**
 * Sanitized category and plugin names: there are few distinct ones, so each is escaped once
 * (bounded: the cache starts over past 1,024 names).
 */
class NameCache {
  readonly #map = new Map<string, string>();

  get(name: string): string {
    let clean = this.#map.get(name);
    if (clean === undefined) {
      clean = sanitizeText(name, 1024);
      if (this.#map.size >= 1024) this.#map.clear();
      this.#map.set(name, clean);
    }
    return clean;
  }
}

function propertiesText(value: unknown): string {
  if (typeof value !== "string" || value === "") return "{}";
  if (value.length * 3 <= MAX_TEXT_BYTES) {
    return value.isWellFormed() ? value : value.toWellFormed();
  }
  const cut = truncateUtf8(value.toWellFormed());
  // Cut JSON is not JSON; keep what fits as text under a key that says so.
  return cut === value ? value : JSON.stringify({ truncated: cut });
}
