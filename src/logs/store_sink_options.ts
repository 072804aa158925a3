/**
 * The sink's options ({@link LogStoreSinkOptions}, each with its default) and their checks
 * ({@link resolveSinkOptions}).
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import type { LogStore } from "./log_store.ts";
import { sizeCapPlan } from "./retention.ts";
import type { WorkerInit } from "./_store_protocol.ts";

/** Options for `getLogStoreSink`; `logStoreSinkOptions` derives them from the config. */
export interface LogStoreSinkOptions {
  /** Records the in-memory queue holds; beyond it records are dropped and counted. Default 10,000. */
  queueSize?: number;
  /** Records per write transaction. Default 1,000. */
  batchSize?: number;
  /** A partial batch is written after at most this long. Default 200 ms. */
  flushIntervalMs?: number;
  /**
   * Bound of the queue's memory (see `estimateRecordBytes`: every string and key of a record's
   * properties, nested ones too); beyond it records are dropped like on a full queue. Default
   * 64 MiB.
   */
  maxQueueBytes?: number;
  /**
   * Cap of the database file plus its WAL (0: none): after every batch the writer deletes the
   * oldest records when it nears the cap (see `sizeCapPlan`), and the deletion is logged.
   * Default 0; `logStoreSinkOptions` passes `logging.store.max_bytes` (1 GiB by default).
   */
  maxBytes?: number;
  /** Delete records older than this many days (0: keep). Default 0. */
  retentionDays?: number;
  /** Keep at most this many records (0: no limit). Default 0. */
  maxRows?: number;
  /** How often the writer enforces retention (in batches of 2,000 rows). Default 60,000 ms. */
  retentionIntervalMs?: number;
  /**
   * How long one write attempt waits for another connection's lock before it backs off and
   * retries. Default 200 ms.
   */
  busyTimeoutMs?: number;
  /** Backoff between failed write attempts: starts here, doubles. Default 50 ms. */
  minRetryDelayMs?: number;
  /** ... up to this. Default 5,000 ms. */
  maxRetryDelayMs?: number;
  /** While drops go on, report them at most this often. Default 10,000 ms. */
  dropReportIntervalMs?: number;
  /** How long disposal waits for queued records to be written. Default 10,000 ms. */
  disposeTimeoutMs?: number;
  /** Where the sink reports drops, degradation and recovery. Default `plugsconc.logs.store`. */
  logger?: Logger;
}

/** A batch stops growing at this many (estimated) bytes. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;

/** {@link LogStoreSinkOptions} checked, with their defaults, and what the writer gets first. */
export interface SinkSettings {
  /** `queueSize`. */
  readonly capacity: number;
  readonly batchSize: number;
  readonly flushIntervalMs: number;
  /** `maxQueueBytes`. */
  readonly maxBytes: number;
  readonly dropReportIntervalMs: number;
  readonly disposeTimeoutMs: number;
  /** `maxBytes`: the cap of database plus WAL (0: none). */
  readonly maxStoreBytes: number;
  /** Where a batch stops growing: at most 8 MiB, less under a small `maxStoreBytes`. */
  readonly maxBatchBytes: number;
  readonly init: WorkerInit;
  readonly log: Logger;
}

/**
 * Checks `options` for a sink writing to `store` and fills in the defaults.
 *
 * @throws {RangeError} naming the first option out of range, with its value
 */
export function resolveSinkOptions(store: LogStore, options: LogStoreSinkOptions): SinkSettings {
  // Checked in this order: the error names the first bad option.
  const checked = {
    capacity: positiveInt("queueSize", options.queueSize ?? 10_000),
    batchSize: positiveInt("batchSize", options.batchSize ?? 1_000),
    flushIntervalMs: positiveInt("flushIntervalMs", options.flushIntervalMs ?? 200),
    maxBytes: positiveInt("maxQueueBytes", options.maxQueueBytes ?? 64 * 1024 * 1024),
    dropReportIntervalMs: nonNegative(
      "dropReportIntervalMs",
      options.dropReportIntervalMs ?? 10_000,
    ),
    disposeTimeoutMs: nonNegative("disposeTimeoutMs", options.disposeTimeoutMs ?? 10_000),
    maxStoreBytes: nonNegative("maxBytes", options.maxBytes ?? 0),
  };
  const maxStoreBytes = checked.maxStoreBytes;
  return {
    ...checked,
    maxBatchBytes: maxStoreBytes > 0
      ? sizeCapPlan(Math.ceil(maxStoreBytes)).batchBytes
      : MAX_BATCH_BYTES,
    init: {
      t: "init",
      path: store.path,
      store: {
        ...store.options,
        create: true,
        busyTimeoutMs: nonNegative("busyTimeoutMs", options.busyTimeoutMs ?? 200),
      },
      retention: {
        retentionDays: nonNegative("retentionDays", options.retentionDays ?? 0),
        maxRows: nonNegative("maxRows", options.maxRows ?? 0),
        intervalMs: nonNegative("retentionIntervalMs", options.retentionIntervalMs ?? 60_000),
        batchSize: 2_000,
        maxBytes: Math.ceil(maxStoreBytes),
      },
      minRetryDelayMs: positiveInt("minRetryDelayMs", options.minRetryDelayMs ?? 50),
      maxRetryDelayMs: positiveInt("maxRetryDelayMs", options.maxRetryDelayMs ?? 5_000),
    },
    log: options.logger ?? getLogger(["plugsconc", "logs", "store"]),
  };
}

function positiveInt(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0)) {
    throw new RangeError(`${name} must be a number >= 0, got ${value}`);
  }
  return value;
}
