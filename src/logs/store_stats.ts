/**
 * What `LogStore.stats` reports ({@link LogStoreStats}) and how it is read
 * ({@link readStats}).
 *
 * @module
 */
import type { LogLevel } from "@logtape/logtape";
import type { DatabaseSync } from "node:sqlite";
import { readVersion } from "./migrations.ts";
import { levelName } from "./record_text.ts";
import { walSize } from "./_wal_size.ts";

/** What `LogStore.stats` reports. */
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

/**
 * Row count, size, drops, oldest/newest record, rows per level of the database at `path`
 * (open as `db`).
 *
 * @throws what SQLite throws (`LogStore.stats` makes it a `LogStoreError`)
 */
export function readStats(db: DatabaseSync, path: string): LogStoreStats {
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
  const walBytes = walSize(path);
  return {
    path,
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
}
