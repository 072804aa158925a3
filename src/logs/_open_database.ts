import { DatabaseSync } from "node:sqlite";
import { dirname } from "node:path";
import type { LogStoreOptions } from "./log_store.ts";
import { LogStoreError, storeError } from "./log_store_error.ts";
import { checkSchemaVersion, migrate } from "./migrations.ts";

/**
 * Opens the SQLite connection of a `LogStore` (see `LogStore.open`): checks the options,
 * creates the folder, sets the connection up (WAL, page size, checkpoints, cache) and migrates
 * the schema; read-only, it only checks the schema version. Private to `src/logs/`.
 *
 * @returns the connection and the options with their defaults filled in
 */
export function openDatabase(
  path: string,
  options: LogStoreOptions,
): { db: DatabaseSync; options: LogStoreOptions } {
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
  if (options.readOnly) return openReadOnly(path, { ...options, busyTimeoutMs: busy });
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
    throw storeError(e, path, "prepare");
  }
  return { db, options: { ...options, busyTimeoutMs: busy, synchronous: sync } };
}

function openReadOnly(
  path: string,
  options: LogStoreOptions,
): { db: DatabaseSync; options: LogStoreOptions } {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { timeout: options.busyTimeoutMs, readOnly: true });
  } catch (e) {
    throw storeError(e, path, "open");
  }
  try {
    checkSchemaVersion(db, path);
  } catch (e) {
    db.close();
    throw storeError(e, path, "read");
  }
  return { db, options };
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
