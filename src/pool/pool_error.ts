import { PlugsconcError } from "../errors/mod.ts";

/**
 * The stable codes of {@linkcode PoolError}.
 *
 * Admission (`submit` rejects): `POOL_QUEUE_FULL` (the queue holds `queueLimit` jobs),
 * `POOL_STOPPED` (`stop`, `shutdown` or `terminate` was called).
 * Outcome of a job (in a failed or cancelled `JobResult`, and thrown by `run`):
 * `POOL_JOB_FAILED` (the job threw; `cause` is the job's error), `POOL_JOB_INVALID` (the module
 * cannot be imported, the export is not a function, or the input or result cannot be cloned;
 * never retried), `POOL_TIMEOUT` (an attempt ran longer than `timeoutMs`), `POOL_DEADLINE`
 * (the job's `deadline` passed; never retried), `POOL_WORKER_CRASHED` (the worker died while
 * the job was its oldest unfinished one), `POOL_SHUTDOWN` (dropped from the queue by
 * `shutdown`), `POOL_TERMINATED` (cancelled by `terminate` or dispose).
 */
export type PoolErrorCode =
  | "POOL_QUEUE_FULL"
  | "POOL_STOPPED"
  | "POOL_JOB_FAILED"
  | "POOL_JOB_INVALID"
  | "POOL_TIMEOUT"
  | "POOL_DEADLINE"
  | "POOL_WORKER_CRASHED"
  | "POOL_SHUTDOWN"
  | "POOL_TERMINATED";

/**
 * An error of the worker pool: a refused submission, or the reason a job did not succeed.
 *
 * `details` carries what is known: `module`, `fn`, `jobId`, `attempts`, `queueLimit`, ...
 *
 * @example
 * ```ts
 * try {
 *   await pool.submit({ module: url, fn: "work", input });
 * } catch (e) {
 *   if (e instanceof PoolError && e.code === "POOL_QUEUE_FULL") await later();
 * }
 * ```
 */
export class PoolError extends PlugsconcError {
  /** Narrowed to the pool's codes. */
  declare readonly code: PoolErrorCode;

  /**
   * @param code one of {@linkcode PoolErrorCode}
   * @param message what failed, where, and what to do
   * @param options `cause` and `details`
   */
  constructor(
    code: PoolErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
  }
}
