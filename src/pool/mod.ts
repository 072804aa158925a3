/**
 * A Web Worker job pool: a bounded queue, `max_workers` workers that import each job module
 * once, retries with backoff, timeouts, deadlines, cancellation, crash recovery, three stop
 * modes and metrics. See {@linkcode WorkerPool}.
 *
 * Workers inherit the host's permissions: only run trusted job modules here.
 *
 * @module
 */
export { type StopOptions, WorkerPool } from "./worker_pool.ts";
export { poolOptionsFromConfig, type WorkerPoolOptions } from "./worker_pool_options.ts";
export { jobErrorToError } from "./job_error.ts";
export { PoolError, type PoolErrorCode } from "./pool_error.ts";
export type {
  DurationSummary,
  Job,
  JobContext,
  JobError,
  JobFunction,
  JobResult,
  JobStatus,
  PoolMetrics,
  PoolState,
} from "./types.ts";
