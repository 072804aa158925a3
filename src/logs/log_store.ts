import type { LogLevel } from "@logtape/logtape";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { LogStoreError, storeError } from "./log_store_error.ts";
import { type LogEntry, type LogQuery, querySql, toEntry } from "./log_query.ts";
import { levelNumber } from "./record_text.ts";
import {
  capSize,
  pruneRetention,
  type RetentionPolicy,
  type SizeCapPlan,
  type SizeCapResult,
} from "./retention.ts";
import { type LogStoreStats, readStats } from "./store_stats.ts";
import { openDatabase } from "./_open_database.ts";
import { decodeRows, type FlatRows, ROW_WIDTH } from "./_row_codec.ts";
import { RowWriter } from "./_row_writer.ts";

/** How hard SQLite pushes each commit to disk (`PRAGMA synchronous`); see docs/logs.md. */
export type StoreSynchronous = "OFF" | "NORMAL" | "FULL";

/** Options for {@link LogStore.open}. */
export interface LogStoreOptions {
  /** `PRAGMA synchronous`. Default `NORMAL`. */
  synchronous?: StoreSynchronous;
  /**
   * How long one statement waits for another connection's lock before it fails with
   * `LOG_STORE_LOCKED`. Default 1000 ms. The sink's writer retries on its own, so it uses a
   * short wait to stay responsive.
   */
  busyTimeoutMs?: number;
  /** Create the file (and its folder) if missing. Default `true`; `false` gives `LOG_STORE_MISSING`. */
  create?: boolean;
  /**
   * Open for reading only (readers: `logs query|tail|stats`, `host.logs` without a sink): the
   * file is never changed (no journal switch, no migration) and must exist. Default `false`.
   */
  readOnly?: boolean;
  /**
   * Cap the database at this many pages (`PRAGMA max_page_count`): beyond it writes fail like on
   * a full disk (`LOG_STORE_FULL`). Default: no cap.
   */
  maxPageCount?: number;
}

/** A record to append. */
export interface NewLogEntry {
  /** Milliseconds since the epoch. */
  readonly ts: number;
  readonly level: LogLevel | "warn";
  /** Category path, e.g. `["plugsconc", "plugin", "cat"]` or `"plugsconc.plugin.cat"`. */
  readonly category: readonly string[] | string;
  readonly plugin?: string | null;
  readonly message: string;
  /** Structured fields (an object, or its JSON). Default `{}`. */
  readonly properties?: Readonly<Record<string, unknown>> | string;
}

/** What one append committed. */
export interface AppendResult {
  readonly count: number;
  /** Sequence number of the last record written (0 when nothing was written). */
  readonly lastSeq: number;
}

/**
 * The persistent log store: one SQLite file in WAL mode (readers never wait for the writer),
 * a `schema_version` table with forward migrations, indexes for time, level and plugin.
 *
 * Several connections may use one file: the host's writer (in the sink's worker), the host's
 * queries, `plugsconc logs query|tail` in another process.
 *
 * @example
 * ```ts
 * await using store = await LogStore.open("data/logs.db");
 * store.append([{ ts: Date.now(), level: "info", category: "plugsconc.host", message: "hi" }]);
 * for (const e of store.query({ minLevel: "warning", since: Date.now() - 3600_000 })) {
 *   console.log(e.level, e.message);
 * }
 * ```
 */
export class LogStore implements Disposable, AsyncDisposable {
  /** The database file. */
  readonly path: string;
  /** The options it was opened with. */
  readonly options: Readonly<LogStoreOptions>;
  readonly #db: DatabaseSync;
  readonly #writer: RowWriter;
  #lastSeq: StatementSync | undefined;
  #closed = false;

  private constructor(path: string, db: DatabaseSync, options: LogStoreOptions) {
    this.path = path;
    this.#db = db;
    this.#writer = new RowWriter(db, path);
    this.options = Object.freeze({ ...options });
  }

  /**
   * Opens (and by default creates) the store at `path`, switches it to WAL, applies pending
   * migrations.
   *
   * @throws {LogStoreError} `LOG_STORE_UNWRITABLE` (folder or file not writable),
   *   `LOG_STORE_LOCKED` (a migration could not get the write lock), `LOG_STORE_MISSING`
   *   (`create: false` and no file), `LOG_STORE_CORRUPT` (not a SQLite database),
   *   `LOG_STORE_SCHEMA` (written by a newer plugsconc)
   */
  static open(path: string, options: LogStoreOptions = {}): Promise<LogStore> {
    try {
      return Promise.resolve(LogStore.openSync(path, options));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Synchronous {@link LogStore.open} (for workers and scripts). */
  static openSync(path: string, options: LogStoreOptions = {}): LogStore {
    const opened = openDatabase(path, options);
    return new LogStore(path, opened.db, opened.options);
  }

  /** Whether {@link LogStore.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Appends records in one transaction; text is sanitized (see `sanitizeText`).
   *
   * @throws {LogStoreError} `LOG_STORE_LOCKED`, `LOG_STORE_FULL`, `LOG_STORE_IO`, ... — nothing
   *   of the batch is written then
   */
  append(entries: readonly NewLogEntry[]): AppendResult {
    const rows: unknown[] = [];
    for (const e of entries) {
      rows.push(
        e.ts,
        levelNumber(e.level),
        typeof e.category === "string" ? e.category : e.category.join("."),
        e.plugin ?? null,
        e.message,
        typeof e.properties === "string" ? e.properties : JSON.stringify(e.properties ?? {}),
      );
    }
    return this.appendRows(rows);
  }

  /**
   * Appends a batch of `encodeRow` records in one transaction (the sink's wire format); see
   * {@link LogStore.appendRows}.
   */
  appendEncoded(batch: string, dropped = 0): AppendResult {
    this.#open();
    return this.#writer.write(dropped, (put) => {
      try {
        decodeRows(batch, put);
      } catch (e) {
        throw new LogStoreError("LOG_STORE_FAILED", `a log batch for ${this.path} is malformed`, {
          path: this.path,
          cause: e,
        });
      }
    });
  }

  /**
   * Appends {@link FlatRows} in one transaction and adds `dropped` to the persistent count of
   * dropped records. Messages, categories and plugin names are sanitized here (off the logging
   * call path: in the sink's worker).
   */
  appendRows(rows: FlatRows, dropped = 0): AppendResult {
    this.#open();
    return this.#writer.write(dropped, (put) => {
      for (let i = 0; i + ROW_WIDTH <= rows.length; i += ROW_WIDTH) {
        put(rows[i], rows[i + 1], rows[i + 2], rows[i + 3], rows[i + 4], rows[i + 5]);
      }
    });
  }

  /**
   * Records matching `filter`: the newest `limit` (oldest first), or with `afterSeq` the first
   * `limit` after it.
   *
   * @throws {RangeError} for a bad limit or level; {LogStoreError} when the database fails
   */
  query(filter: LogQuery = {}): LogEntry[] {
    this.#open();
    const query = querySql(filter);
    if (query === undefined) return [];
    let rows: Record<string, unknown>[];
    try {
      rows = this.#db.prepare(query.sql).all(...query.args) as Record<string, unknown>[];
    } catch (e) {
      throw storeError(e, this.path, "query");
    }
    const entries = rows.map(toEntry);
    return query.newestFirst ? entries.reverse() : entries;
  }

  /** The highest sequence number present (0 when empty): where `tail` starts following. */
  lastSeq(): number {
    this.#open();
    try {
      this.#lastSeq ??= this.#db.prepare("SELECT max(seq) AS s FROM logs");
      const row = this.#lastSeq.get() as { s: number | null };
      return row.s ?? 0;
    } catch (e) {
      throw storeError(e, this.path, "read");
    }
  }

  /** Row count, size, drops, oldest/newest record, rows per level. */
  stats(): LogStoreStats {
    this.#open();
    try {
      return readStats(this.#db, this.path);
    } catch (e) {
      throw storeError(e, this.path, "read");
    }
  }

  /**
   * Deletes at most `batchSize` records that `policy` no longer keeps, in one short
   * transaction; call it again until it returns 0. Deletes the oldest first.
   *
   * @returns how many records it deleted
   */
  prune(policy: RetentionPolicy, options: { now?: number; batchSize?: number } = {}): number {
    this.#open();
    try {
      return pruneRetention(this.#db, policy, options);
    } catch (e) {
      throw storeError(e, this.path, "prune");
    }
  }

  /**
   * Keeps the database and its WAL under `plan.maxBytes` (see `sizeCapPlan`): deletes the
   * oldest records when the used pages passed the plan's mark. The writer calls it after every
   * batch; cheap when there is nothing to delete.
   */
  capSize(plan: SizeCapPlan, options: { batchSize?: number } = {}): SizeCapResult {
    this.#open();
    try {
      return capSize(this.#db, this.path, plan, options);
    } catch (e) {
      throw storeError(e, this.path, "cap the size of");
    }
  }

  /** Closes the connection (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#db.close();
    } catch { /* already closed */ }
  }

  /** Same as {@link LogStore.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Same as {@link LogStore.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }

  #open(): void {
    if (this.#closed) {
      throw new LogStoreError("LOG_STORE_CLOSED", `the log store ${this.path} is closed`, {
        path: this.path,
      });
    }
  }
}
