/**
 * What the log store's writer deletes: records past `retention_days` / `max_rows`
 * ({@link pruneRetention}), and the oldest records when the database reaches
 * `logging.store.max_bytes` ({@link capSize}). Both delete oldest first, in short transactions.
 * The functions take the writer's connection; `LogStore.prune` and `LogStore.capSize` wrap
 * them (and their errors).
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { rollback } from "./_rollback.ts";
import { walSize } from "./_wal_size.ts";

/** Which records {@link pruneRetention} deletes. */
export interface RetentionPolicy {
  /** Delete records older than this many days (0 or absent: no age limit). */
  readonly retentionDays?: number;
  /** Keep at most this many of the newest records (0 or absent: no count limit). */
  readonly maxRows?: number;
}

/** Rows per delete transaction, by default. */
export const PRUNE_BATCH = 2_000;

const statements = new WeakMap<DatabaseSync, Map<string, StatementSync>>();

function stmt(db: DatabaseSync, sql: string): StatementSync {
  let map = statements.get(db);
  if (map === undefined) statements.set(db, map = new Map());
  let s = map.get(sql);
  if (s === undefined) map.set(sql, s = db.prepare(sql));
  return s;
}

function deleteIn(db: DatabaseSync, sql: string, ...args: number[]): number {
  db.exec("BEGIN IMMEDIATE");
  try {
    const changes = Number(stmt(db, sql).run(...args).changes);
    db.exec("COMMIT");
    return changes;
  } catch (e) {
    rollback(db);
    throw e;
  }
}

/**
 * Deletes at most `batchSize` records that `policy` no longer keeps, in one short
 * transaction; call it again until it returns 0. Deletes the oldest first.
 *
 * @returns how many records it deleted
 */
export function pruneRetention(
  db: DatabaseSync,
  policy: RetentionPolicy,
  options: { now?: number; batchSize?: number } = {},
): number {
  const batch = options.batchSize ?? PRUNE_BATCH;
  const now = options.now ?? Date.now();
  let deleted = 0;
  const maxRows = policy.maxRows ?? 0;
  if (maxRows > 0) {
    // seq only grows and records are deleted oldest first, so the cut-off is exact while
    // there are no gaps, and keeps fewer records (never more) when there are.
    const last = (stmt(db, "SELECT max(seq) AS s FROM logs").get() as { s: number | null }).s;
    if (last !== null && last > maxRows) {
      deleted += deleteIn(
        db,
        "DELETE FROM logs WHERE seq IN (SELECT seq FROM logs WHERE seq <= ? ORDER BY seq LIMIT ?)",
        last - maxRows,
        batch,
      );
    }
  }
  const days = policy.retentionDays ?? 0;
  if (days > 0 && deleted < batch) {
    deleted += deleteIn(
      db,
      "DELETE FROM logs WHERE seq IN (SELECT seq FROM logs WHERE ts < ? ORDER BY ts LIMIT ?)",
      now - days * 86_400_000,
      batch - deleted,
    );
  }
  return deleted;
}

/**
 * How a byte cap shapes the writer. The file is `page_count × page_size` (it never shrinks:
 * deleted rows free pages that later rows reuse) plus the write-ahead log, so the cap is kept
 * by holding the *used* pages under `highBytes`, which leaves room below the cap for the WAL
 * between checkpoints and for the batch that crossed the mark before it was checked.
 */
export interface SizeCapPlan {
  /** The cap of database plus WAL, in bytes. */
  readonly maxBytes: number;
  /** `PRAGMA wal_autocheckpoint`: pages of WAL after which SQLite checkpoints. */
  readonly walAutocheckpointPages: number;
  /** `PRAGMA journal_size_limit`, and the WAL size past which the writer truncates it. */
  readonly walBytes: number;
  /** The sink's batches stop growing at this many (estimated) bytes. */
  readonly batchBytes: number;
  /** Used bytes past which the oldest records are deleted ... */
  readonly highBytes: number;
  /** ... until the used bytes are below this. */
  readonly lowBytes: number;
}

const MIB = 1024 * 1024;

function clamp(value: number, min: number, max: number): number {
  return Math.max(min, Math.min(max, Math.floor(value)));
}

/**
 * The plan for a cap of `maxBytes`: WAL checkpoints every 1/16 of the cap (at most 40 MiB,
 * what the store uses without a cap), batches of at most 1/32 of it (at most 8 MiB), deletion
 * from 1/16 + 4 batches below the cap down to 10 % of the cap lower. Caps under ~8 MiB are
 * kept less tightly (the store's fixed overhead is a few pages).
 *
 * @throws {RangeError} when `maxBytes` is not a positive integer
 */
export function sizeCapPlan(maxBytes: number, pageSize = 8192): SizeCapPlan {
  if (!(Number.isInteger(maxBytes) && maxBytes > 0)) {
    throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  }
  const walBytes = clamp(maxBytes / 16, 256 * 1024, 40 * MIB);
  const batchBytes = clamp(maxBytes / 32, 64 * 1024, 8 * MIB);
  const highBytes = Math.max(Math.floor(maxBytes / 2), maxBytes - walBytes - 4 * batchBytes);
  return {
    maxBytes,
    walAutocheckpointPages: Math.max(16, Math.floor(walBytes / pageSize)),
    walBytes,
    batchBytes,
    highBytes,
    lowBytes: Math.max(Math.floor(highBytes / 2), highBytes - Math.floor(maxBytes / 10)),
  };
}

/** What one {@link capSize} found and did. */
export interface SizeCapResult {
  /** Records deleted. */
  readonly deleted: number;
  /** Bytes of pages in use after it (`(page_count - freelist_count) × page_size`). */
  readonly usedBytes: number;
  /** Bytes of the database file (`page_count × page_size`) plus the WAL, after it. */
  readonly fileBytes: number;
  /** Whether it truncated the WAL. */
  readonly checkpointed: boolean;
}

/** Connections already set up for a cap, with the cap. */
const configured = new WeakMap<DatabaseSync, number>();
/** When each connection last tried to truncate the WAL. */
const truncatedAt = new WeakMap<DatabaseSync, number>();
/** Per-row bytes besides its texts: record header, b-tree cells of the row and its indexes. */
const ROW_OVERHEAD = 64;

function pages(db: DatabaseSync): { used: number; total: number } {
  const size = (stmt(db, "PRAGMA page_size").get() as { page_size: number }).page_size;
  const count = (stmt(db, "PRAGMA page_count").get() as { page_count: number }).page_count;
  const free = (stmt(db, "PRAGMA freelist_count").get() as { freelist_count: number })
    .freelist_count;
  return { used: (count - free) * size, total: count * size };
}

/**
 * Keeps the database at `path` (open as `db`) under `plan.maxBytes`: on first use sizes WAL
 * checkpoints to the plan; when the used pages exceed `plan.highBytes`, deletes the oldest
 * records (at most `batchSize` per transaction, each batch sized from the rows' lengths) until
 * they are below `plan.lowBytes`; when the WAL outgrew the plan (a reader held a checkpoint
 * back), truncates it. Cheap when there is nothing to do: three pragmas and a `stat`.
 *
 * @returns what it deleted and the sizes after it
 */
export function capSize(
  db: DatabaseSync,
  path: string,
  plan: SizeCapPlan,
  options: { batchSize?: number; maxSteps?: number } = {},
): SizeCapResult {
  if (configured.get(db) !== plan.maxBytes) {
    db.exec(`PRAGMA wal_autocheckpoint = ${plan.walAutocheckpointPages}`);
    db.exec(`PRAGMA journal_size_limit = ${plan.walBytes}`);
    configured.set(db, plan.maxBytes);
  }
  const batch = options.batchSize ?? PRUNE_BATCH;
  const maxSteps = options.maxSteps ?? 64;
  let { used, total } = pages(db);
  let deleted = 0;
  if (used > plan.highBytes) {
    for (let step = 0; step < maxSteps && used > plan.lowBytes; step++) {
      const need = used - plan.lowBytes;
      // octet_length() reads the record header only, not the text: this scan is cheap.
      const rows = stmt(
        db,
        "SELECT seq, octet_length(message) + octet_length(properties) + octet_length(category) " +
          "AS b FROM logs ORDER BY seq LIMIT ?",
      ).all(batch) as { seq: number; b: number }[];
      if (rows.length === 0) break;
      let sum = 0;
      let cutoff = rows[0]!.seq;
      for (const row of rows) {
        sum += row.b + ROW_OVERHEAD;
        cutoff = row.seq;
        if (sum >= need) break;
      }
      const n = deleteIn(db, "DELETE FROM logs WHERE seq <= ?", cutoff);
      if (n === 0) break;
      deleted += n;
      ({ used, total } = pages(db));
    }
  }
  let wal = walSize(path);
  let checkpointed = false;
  const now = Date.now();
  if (wal > plan.walBytes + plan.batchBytes && now - (truncatedAt.get(db) ?? 0) >= 1_000) {
    // Waits for readers at most the busy timeout (so at most once a second); a reader that
    // stays only delays this.
    truncatedAt.set(db, now);
    const r = stmt(db, "PRAGMA wal_checkpoint(TRUNCATE)").get() as { busy: number };
    checkpointed = r.busy === 0;
    wal = walSize(path);
  }
  return { deleted, usedBytes: used, fileBytes: total + wal, checkpointed };
}
