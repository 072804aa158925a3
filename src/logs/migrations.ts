/**
 * The log database's schema: its version ({@link SCHEMA_VERSION}), the forward migrations a
 * writable open applies ({@link migrate}), and the check a read-only open makes instead
 * ({@link checkSchemaVersion}).
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { LogStoreError, storeError } from "./log_store_error.ts";
import { rollback } from "./_rollback.ts";

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

/** The schema version of the database open as `db` (0: none, not a plugsconc log database). */
export function readVersion(db: DatabaseSync): number {
  const table = db.prepare(
    "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
  ).get();
  if (table === undefined) return 0;
  const row = db.prepare("SELECT max(version) AS v FROM schema_version").get() as {
    v: number | null;
  };
  return row.v ?? 0;
}

/**
 * Brings the database at `path` (open as `db`) to {@link SCHEMA_VERSION}, in one write
 * transaction.
 *
 * @throws {LogStoreError} `LOG_STORE_SCHEMA` when a newer plugsconc wrote it; what
 *   {@link storeError} makes of a failed migration (`LOG_STORE_LOCKED`, ...)
 */
export function migrate(db: DatabaseSync, path: string): void {
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
    rollback(db);
    throw storeError(e, path, "migrate");
  }
}

/**
 * For a read-only open, which never migrates: the database at `path` (open as `db`) must be at
 * {@link SCHEMA_VERSION}.
 *
 * @throws {LogStoreError} `LOG_STORE_SCHEMA` (a newer plugsconc wrote it), `LOG_STORE_CORRUPT`
 *   (not a plugsconc log database, or one still to migrate)
 */
export function checkSchemaVersion(db: DatabaseSync, path: string): void {
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
}
