import type { LogLevel } from "@logtape/logtape";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { dirname } from "node:path";
import { PlugsconcError } from "../errors/mod.ts";
import {
  levelName,
  levelNumber,
  MAX_TEXT_BYTES,
  sanitizeText,
  truncateUtf8,
} from "./record_text.ts";
import {
  capSize,
  pruneRetention,
  type RetentionPolicy,
  type SizeCapPlan,
  type SizeCapResult,
} from "./retention.ts";

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

/** What {@link LogStore.query} selects; every field narrows the result. */
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

/** What {@link LogStore.stats} reports. */
export interface LogStoreStats {
  readonly path: string;
  readonly rows: number;
  /** Database plus write-ahead log, in bytes. */
  readonly sizeBytes: number;
  /** The write-ahead log alone, in bytes. */
  readonly walBytes: number;
  /** Records the writers counted as dropped (queue full, unwritable batches), ever. */
  readonly dropped: number;
  /** Time of the oldest and newest record (ms since the epoch), `null` when empty. */
  readonly oldestTs: number | null;
  readonly newestTs: number | null;
  /** Lowest and highest sequence number present, `null` when empty. */
  readonly firstSeq: number | null;
  readonly lastSeq: number | null;
  readonly schemaVersion: number;
  /** Rows per level name. */
  readonly levels: Readonly<Partial<Record<LogLevel, number>>>;
}

export type { RetentionPolicy } from "./retention.ts";

/** What one append committed. */
export interface AppendResult {
  readonly count: number;
  /** Sequence number of the last record written (0 when nothing was written). */
  readonly lastSeq: number;
}

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

/** Error codes of {@link LogStoreError}. */
export type LogStoreErrorCode =
  | "LOG_STORE_UNWRITABLE"
  | "LOG_STORE_LOCKED"
  | "LOG_STORE_FULL"
  | "LOG_STORE_IO"
  | "LOG_STORE_CORRUPT"
  | "LOG_STORE_MISSING"
  | "LOG_STORE_SCHEMA"
  | "LOG_STORE_CLOSED"
  | "LOG_STORE_FLUSH_TIMEOUT"
  | "LOG_STORE_FAILED";

const RETRYABLE: ReadonlySet<string> = new Set([
  "LOG_STORE_UNWRITABLE",
  "LOG_STORE_LOCKED",
  "LOG_STORE_FULL",
  "LOG_STORE_IO",
]);

/** A failure of the SQLite log store; `details.path` names the database file. */
export class LogStoreError extends PlugsconcError {
  declare readonly code: LogStoreErrorCode;

  /**
   * @param code one of {@link LogStoreErrorCode}
   * @param message what failed, where, and what to do
   * @param options `path`, `cause`, more details
   */
  constructor(
    code: LogStoreErrorCode,
    message: string,
    options: { path?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, {
      cause: options.cause,
      details: {
        ...(options.path === undefined ? {} : { path: options.path }),
        ...options.details,
      },
    });
  }

  /** Whether the condition can clear by itself (a lock, a full disk, permissions, I/O). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

/** The newest schema version this code writes. */
export const SCHEMA_VERSION = 1;

/** Forward migrations; `MIGRATIONS[i]` brings a database from version `i` to `i + 1`. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE logs (
     seq        INTEGER PRIMARY KEY AUTOINCREMENT,
     ts         INTEGER NOT NULL,
     level      INTEGER NOT NULL,
     category   TEXT    NOT NULL,
     plugin     TEXT,
     message    TEXT    NOT NULL,
     properties TEXT    NOT NULL DEFAULT '{}'
   );
   CREATE INDEX logs_ts ON logs (ts);
   -- Partial: most records are info or debug, so an index of warnings and worse is small and
   -- cheap to keep while still making "--level warning" queries fast.
   CREATE INDEX logs_warn_ts ON logs (ts) WHERE level >= 3;
   CREATE INDEX logs_plugin_ts ON logs (plugin, ts) WHERE plugin IS NOT NULL;
   CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;`,
];

/** Rows per multi-row INSERT: far fewer JS-to-SQLite crossings than one statement per row. */
const CHUNK = 128;
const MAX_LIMIT = 100_000;

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
  readonly #statements = new Map<string, StatementSync>();
  readonly #args: unknown[] = new Array(CHUNK * ROW_WIDTH);
  readonly #names = new NameCache();
  #closed = false;

  private constructor(path: string, db: DatabaseSync, options: LogStoreOptions) {
    this.path = path;
    this.#db = db;
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
    const busy = options.busyTimeoutMs ?? 1000;
    if (!(Number.isInteger(busy) && busy >= 0)) {
      throw new RangeError(`busyTimeoutMs must be an integer >= 0, got ${busy}`);
    }
    const sync = options.synchronous ?? "NORMAL";
    if (!["OFF", "NORMAL", "FULL"].includes(sync)) {
      throw new RangeError(`synchronous must be OFF, NORMAL or FULL, got ${sync}`);
    }
    if ((options.create === false || options.readOnly) && !exists(path)) {
      throw new LogStoreError(
        "LOG_STORE_MISSING",
        `there is no log database at ${path}; the host creates it when it runs with ` +
          "logging.store.enabled (check --config and logging.store.db_file)",
        { path },
      );
    }
    if (options.readOnly) return LogStore.#openReadOnly(path, { ...options, busyTimeoutMs: busy });
    if (options.create !== false) {
      try {
        Deno.mkdirSync(dirname(path), { recursive: true });
      } catch (e) {
        throw storeError(e, path, "create the folder of");
      }
    }
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path, { timeout: busy });
    } catch (e) {
      throw storeError(e, path, "open");
    }
    try {
      // 8 KiB pages make appends measurably cheaper; a no-op for an existing database.
      db.exec("PRAGMA page_size = 8192");
      // Switching to WAL needs a write lock only the first time; an existing WAL database opens
      // even while another connection holds a write transaction.
      const mode = db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode?: string };
      if (mode?.journal_mode !== "wal" && options.create !== false) {
        throw new LogStoreError(
          "LOG_STORE_IO",
          `the log database ${path} cannot use write-ahead logging (journal mode ` +
            `${mode?.journal_mode}); put it on a local file system`,
          { path },
        );
      }
      db.exec(`PRAGMA synchronous = ${sync}`);
      // Checkpoint every ~40 MiB of log instead of ~4 MiB: appends rewrite the same index pages
      // in every transaction, and a checkpoint copies each page once however often it changed.
      db.exec("PRAGMA wal_autocheckpoint = 5000");
      db.exec("PRAGMA journal_size_limit = 67108864");
      db.exec("PRAGMA cache_size = -16000");
      if (options.maxPageCount !== undefined) {
        db.exec(`PRAGMA max_page_count = ${options.maxPageCount | 0}`);
      }
      migrate(db, path);
    } catch (e) {
      db.close();
      throw e instanceof LogStoreError ? e : storeError(e, path, "prepare");
    }
    return new LogStore(path, db, { ...options, busyTimeoutMs: busy, synchronous: sync });
  }

  static #openReadOnly(path: string, options: LogStoreOptions): LogStore {
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path, { timeout: options.busyTimeoutMs, readOnly: true });
    } catch (e) {
      throw storeError(e, path, "open");
    }
    try {
      const version = readVersion(db);
      if (version !== SCHEMA_VERSION) {
        throw new LogStoreError(
          version > SCHEMA_VERSION ? "LOG_STORE_SCHEMA" : "LOG_STORE_CORRUPT",
          version === 0
            ? `${path} is not a plugsconc log database (it has no schema_version table); ` +
              "check --db or logging.store.db_file"
            : version > SCHEMA_VERSION
            ? `the log database ${path} has schema version ${version}, newer than this ` +
              `plugsconc understands (${SCHEMA_VERSION}); use a newer plugsconc`
            : `the log database ${path} has schema version ${version}; run the host once ` +
              `(plugsconc run) to migrate it to version ${SCHEMA_VERSION}`,
          { path, details: { version, supported: SCHEMA_VERSION } },
        );
      }
    } catch (e) {
      db.close();
      throw e instanceof LogStoreError ? e : storeError(e, path, "read");
    }
    return new LogStore(path, db, options);
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
   * Appends a batch of {@link encodeRow} records in one transaction (the sink's wire format);
   * see {@link LogStore.appendRows}.
   */
  appendEncoded(batch: string, dropped = 0): AppendResult {
    return this.#transaction(dropped, (put) => {
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
    return this.#transaction(dropped, (put) => {
      for (let i = 0; i + ROW_WIDTH <= rows.length; i += ROW_WIDTH) {
        put(rows[i], rows[i + 1], rows[i + 2], rows[i + 3], rows[i + 4], rows[i + 5]);
      }
    });
  }

  /** One write transaction: `fill` puts rows, they go in multi-row INSERTs of {@link CHUNK}. */
  #transaction(dropped: number, fill: (put: PutRow) => void): AppendResult {
    this.#open();
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
        lastSeq = Number(
          this.#stmt("many", insertSql(CHUNK)).run(...(args as [string])).lastInsertRowid,
        );
        k = 0;
      }
    };
    try {
      db.exec("BEGIN IMMEDIATE");
      fill(put);
      if (k > 0) {
        const one = this.#stmt("one", insertSql(1));
        for (let i = 0; i < k; i += ROW_WIDTH) {
          lastSeq = Number(one.run(...(args.slice(i, i + ROW_WIDTH) as [string])).lastInsertRowid);
        }
      }
      if (dropped > 0) {
        this.#stmt(
          "drop",
          "INSERT INTO meta (key, value) VALUES ('dropped', ?) " +
            "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
        ).run(dropped);
      }
      db.exec("COMMIT");
    } catch (e) {
      this.#rollback();
      throw storeError(e, this.path, "write to");
    } finally {
      args.fill(undefined);
    }
    return { count, lastSeq };
  }

  /**
   * Records matching `filter`: the newest `limit` (oldest first), or with `afterSeq` the first
   * `limit` after it.
   *
   * @throws {RangeError} for a bad limit or level; {LogStoreError} when the database fails
   */
  query(filter: LogQuery = {}): LogEntry[] {
    this.#open();
    const limit = filter.limit ?? 100;
    if (!(Number.isInteger(limit) && limit >= 1 && limit <= MAX_LIMIT)) {
      throw new RangeError(`limit must be an integer from 1 to ${MAX_LIMIT}, got ${limit}`);
    }
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (filter.plugin !== undefined) {
      const names = typeof filter.plugin === "string" ? [filter.plugin] : [...filter.plugin];
      if (names.length === 0) return [];
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
    let rows: Record<string, unknown>[];
    try {
      rows = this.#db.prepare(sql).all(...args) as Record<string, unknown>[];
    } catch (e) {
      throw storeError(e, this.path, "query");
    }
    const entries = rows.map(toEntry);
    return after === undefined ? entries.reverse() : entries;
  }

  /** The highest sequence number present (0 when empty): where `tail` starts following. */
  lastSeq(): number {
    this.#open();
    try {
      const row = this.#stmt("last", "SELECT max(seq) AS s FROM logs").get() as {
        s: number | null;
      };
      return row.s ?? 0;
    } catch (e) {
      throw storeError(e, this.path, "read");
    }
  }

  /** Row count, size, drops, oldest/newest record, rows per level. */
  stats(): LogStoreStats {
    this.#open();
    try {
      const db = this.#db;
      const agg = db.prepare(
        "SELECT count(*) AS rows, min(seq) AS firstSeq, max(seq) AS lastSeq FROM logs",
      ).get() as { rows: number; firstSeq: number | null; lastSeq: number | null };
      const times = db.prepare("SELECT min(ts) AS oldest, max(ts) AS newest FROM logs").get() as {
        oldest: number | null;
        newest: number | null;
      };
      const levels: Partial<Record<LogLevel, number>> = {};
      const byLevel = db.prepare("SELECT level, count(*) AS n FROM logs GROUP BY level").all() as {
        level: number;
        n: number;
      }[];
      for (const { level, n } of byLevel) levels[levelName(level)] = n;
      const dropped = (db.prepare("SELECT value FROM meta WHERE key = 'dropped'").get() as
        | { value: number }
        | undefined)?.value ?? 0;
      const pages = db.prepare("PRAGMA page_count").get() as { page_count: number };
      const pageSize = db.prepare("PRAGMA page_size").get() as { page_size: number };
      const walBytes = fileSize(`${this.path}-wal`);
      return {
        path: this.path,
        rows: agg.rows,
        sizeBytes: pages.page_count * pageSize.page_size + walBytes,
        walBytes,
        dropped,
        oldestTs: times.oldest,
        newestTs: times.newest,
        firstSeq: agg.firstSeq,
        lastSeq: agg.lastSeq,
        schemaVersion: readVersion(db),
        levels,
      };
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
    this.#statements.clear();
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

  #stmt(key: string, sql: string): StatementSync {
    let s = this.#statements.get(key);
    if (s === undefined) {
      s = this.#db.prepare(sql);
      this.#statements.set(key, s);
    }
    return s;
  }

  #rollback(): void {
    try {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
    } catch { /* SQLite rolled back already */ }
  }
}

function insertSql(rows: number): string {
  return "INSERT INTO logs (ts, level, category, plugin, message, properties) VALUES " +
    Array.from({ length: rows }, () => "(?, ?, ?, ?, ?, ?)").join(", ");
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

function toEntry(row: Record<string, unknown>): LogEntry {
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

function readVersion(db: DatabaseSync): number {
  const table = db.prepare(
    "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
  ).get();
  if (table === undefined) return 0;
  const row = db.prepare("SELECT max(version) AS v FROM schema_version").get() as {
    v: number | null;
  };
  return row.v ?? 0;
}

function migrate(db: DatabaseSync, path: string): void {
  let version = readVersion(db);
  if (version > SCHEMA_VERSION) {
    throw new LogStoreError(
      "LOG_STORE_SCHEMA",
      `the log database ${path} has schema version ${version}, newer than this plugsconc ` +
        `understands (${SCHEMA_VERSION}); use a newer plugsconc or another logging.store.db_file`,
      { path, details: { version, supported: SCHEMA_VERSION } },
    );
  }
  if (version === SCHEMA_VERSION) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(
      "CREATE TABLE IF NOT EXISTS schema_version " +
        "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    );
    version = readVersion(db); // another process may have migrated meanwhile
    const mark = db.prepare("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)");
    for (; version < SCHEMA_VERSION; version++) {
      db.exec(MIGRATIONS[version]!);
      mark.run(version + 1, Date.now());
    }
    db.exec("COMMIT");
  } catch (e) {
    try {
      if (db.isTransaction) db.exec("ROLLBACK");
    } catch { /* rolled back */ }
    throw storeError(e, path, "migrate");
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

/** SQLite primary result codes we tell apart. */
const SQLITE = {
  BUSY: 5,
  LOCKED: 6,
  READONLY: 8,
  IOERR: 10,
  CORRUPT: 11,
  FULL: 13,
  CANTOPEN: 14,
  NOTADB: 26,
};

/** Maps a thrown value to a {@link LogStoreError} with a message that says what to do. */
export function storeError(error: unknown, path: string, action: string): LogStoreError {
  if (error instanceof LogStoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const errcode = (error as { errcode?: unknown })?.errcode;
  const primary = typeof errcode === "number" ? errcode & 0xff : classify(error, message);
  const details = { action, sqlite: message, ...(typeof errcode === "number" ? { errcode } : {}) };
  const opts = { path, cause: error, details };
  switch (primary) {
    case SQLITE.BUSY:
    case SQLITE.LOCKED:
      return new LogStoreError(
        "LOG_STORE_LOCKED",
        `the log database ${path} is locked by another connection (${message}); a process ` +
          "holding a write transaction on it must commit or exit. Writes are retried.",
        opts,
      );
    case SQLITE.FULL:
      return new LogStoreError(
        "LOG_STORE_FULL",
        `the log database ${path} cannot grow: the disk is full (${message}). Free space, or ` +
          "lower logging.store.retention_days / max_rows; writes resume when there is room.",
        opts,
      );
    case SQLITE.READONLY:
    case SQLITE.CANTOPEN:
      return new LogStoreError(
        "LOG_STORE_UNWRITABLE",
        `cannot ${action} the log database ${path}: ${message}. Make the file and its folder ` +
          "writable, set logging.store.db_file to a writable path, or set " +
          "logging.store.enabled: false.",
        opts,
      );
    case SQLITE.CORRUPT:
    case SQLITE.NOTADB:
      return new LogStoreError(
        "LOG_STORE_CORRUPT",
        `${path} is not a usable log database (${message}); move it aside and the host ` +
          "creates a new one, or set logging.store.db_file to another file.",
        opts,
      );
    case SQLITE.IOERR:
      return new LogStoreError(
        "LOG_STORE_IO",
        `disk I/O error on the log database ${path} (${message}); check the disk. Writes are retried.`,
        opts,
      );
  }
  return new LogStoreError(
    "LOG_STORE_FAILED",
    `cannot ${action} the log database ${path}: ${message}`,
    opts,
  );
}

function classify(error: unknown, message: string): number {
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotADirectory) {
    return SQLITE.CANTOPEN;
  }
  if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.AlreadyExists) {
    return SQLITE.CANTOPEN;
  }
  if (/read-only file system|EROFS|readonly/i.test(message)) return SQLITE.READONLY;
  if (/no space|ENOSPC|disk is full|quota/i.test(message)) return SQLITE.FULL;
  if (/database (table )?is locked|database is busy/i.test(message)) return SQLITE.BUSY;
  if (/unable to open|permission denied|EACCES|not a directory/i.test(message)) {
    return SQLITE.CANTOPEN;
  }
  if (/not a database|malformed/i.test(message)) return SQLITE.CORRUPT;
  if (/disk I\/O error/i.test(message)) return SQLITE.IOERR;
  return -1;
}
