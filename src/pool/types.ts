/**
 * What a job function receives besides its input, inside the worker.
 *
 * @example
 * ```ts
 * // jobs/sum.ts, loaded by the worker
 * import type { JobContext } from "../src/pool/mod.ts"; // type only: loads nothing
 * export function sum(input: number[], ctx: JobContext): number {
 *   ctx.signal.throwIfAborted();
 *   return input.reduce((a, b) => a + b, 0);
 * }
 * ```
 */
export interface JobContext {
  /** The pool's id of the job (the same in every attempt). */
  readonly id: number;
  /** 1 for the first attempt, 2 for the first retry, ... */
  readonly attempt: number;
  /**
   * Aborted when the job is cancelled (its `reason` is the cancel reason the submitter gave,
   * structured-cloned), times out (`TimeoutError`) or passes its deadline. A job that does not
   * stop soon after (`killGraceMs`) is stopped by terminating its worker. Jobs submitted
   * without `signal`, `timeoutMs` and `deadline` get a signal that never aborts.
   */
  readonly signal: AbortSignal;
  /**
   * Transfers these objects (ArrayBuffers, ports, streams) with the job's result instead of
   * copying them. Call it before returning.
   */
  transfer(...objects: Transferable[]): void;
}

/** The shape of an exported job function. It may return a value or a promise. */
export type JobFunction<I = unknown, O = unknown> = (input: I, ctx: JobContext) => O | Promise<O>;

/** One job for {@linkcode WorkerPool.submit}. */
export interface Job<I = unknown> {
  /**
   * Absolute URL of the module exporting the job function, e.g.
   * `new URL("./jobs/sum.ts", import.meta.url)`. Each worker imports it once.
   */
  module: string | URL;
  /** Name of the exported function. Default: `"default"`. */
  fn?: string;
  /**
   * The function's first argument; structured-cloned into the worker when the job is
   * dispatched (not when it is submitted: do not change it in between).
   */
  input?: I;
  /** Objects in `input` to transfer rather than copy (they are detached on dispatch). */
  transfer?: Transferable[];
  /**
   * Cancels the job: a queued job is dropped, a running one sees `ctx.signal` abort with the
   * same reason. The result is `cancelled` at once. Default: none.
   */
  signal?: AbortSignal;
  /** Longest run of one attempt, in ms; then it fails with `POOL_TIMEOUT`. Default: pool's. */
  timeoutMs?: number;
  /**
   * Wall-clock time (epoch ms or a `Date`) by which the whole job, queueing and retries
   * included, must be done; then it fails with `POOL_DEADLINE`. Default: none.
   */
  deadline?: number | Date;
  /** Retries after a failed attempt (errors, timeouts, crashes). Default: pool's. */
  maxRetries?: number;
  /** Delay before the first retry, in ms. Default: pool's. */
  retryDelayMs?: number;
  /** Factor applied to the delay for each further retry. Default: pool's. */
  retryMultiplier?: number;
}

/** A job's error as plain data (what crosses the worker boundary). */
export interface JobError {
  /** `Error`, `TypeError`, `TimeoutError`, `PoolError`, ... */
  readonly name: string;
  readonly message: string;
  /** The stack, as the worker saw it. */
  readonly stack?: string;
  /** The `code` property of the error, when it has a string one (e.g. `POOL_TIMEOUT`). */
  readonly code?: string;
  /** The error's `cause`, if any. */
  readonly cause?: JobError;
}

/** How a job ended. */
export type JobStatus = "succeeded" | "failed" | "cancelled";

/** The outcome of a job. `submit` resolves with it; it never rejects once a job is accepted. */
export interface JobResult<O = unknown> {
  /** The pool's id of the job. */
  readonly id: number;
  readonly status: JobStatus;
  /** `status === "succeeded"`. */
  readonly ok: boolean;
  /** The function's return value (structured-cloned), when it succeeded. */
  readonly value: O | undefined;
  /** Why it failed or was cancelled. */
  readonly error: JobError | undefined;
  /** For a cancelled job: the abort reason as given (not cloned). */
  readonly reason?: unknown;
  /** Attempts that were started (0 if it never left the queue). */
  readonly attempts: number;
  /** Time spent queued, in the pool's queue or behind other jobs in a worker, in ms. */
  readonly waitMs: number;
  /** Time spent running, all attempts together, in ms. */
  readonly runMs: number;
}

/** Totals of a duration over the settled jobs. */
export interface DurationSummary {
  readonly count: number;
  readonly totalMs: number;
  readonly maxMs: number;
  /** `totalMs / count` (0 when there were none). */
  readonly meanMs: number;
}

/** The pool's lifecycle. */
export type PoolState = "running" | "stopping" | "shutting-down" | "stopped";

/**
 * Counters and gauges of a {@linkcode WorkerPool}.
 *
 * Invariant: `submitted = succeeded + failed + cancelled + pending`, where pending jobs are
 * queued, running or waiting to retry.
 */
export interface PoolMetrics {
  readonly state: PoolState;
  /** Jobs accepted by `submit`. */
  readonly submitted: number;
  /** Submissions refused (queue full, pool stopped). Not part of `submitted`. */
  readonly rejected: number;
  readonly succeeded: number;
  readonly failed: number;
  /** Cancelled by a signal, dropped by `shutdown`, or cancelled by `terminate`. */
  readonly cancelled: number;
  /** Retries scheduled (a job retried twice counts 2). */
  readonly retried: number;
  /** Jobs accepted and not yet settled. */
  readonly pending: number;
  /** Jobs in the pool's queue (not yet sent to a worker). */
  readonly queueDepth: number;
  /** Jobs sent to a worker and not yet finished. */
  readonly running: number;
  /** Workers alive now. */
  readonly workers: number;
  readonly maxWorkers: number;
  /** Workers terminated because a job timed out, ignored its cancellation, or crashed it. */
  readonly workersReplaced: number;
  /** Attempts of settled jobs, all together. */
  readonly attempts: number;
  /** Wait time of settled jobs. */
  readonly waitMs: DurationSummary;
  /** Run time of settled jobs. */
  readonly runMs: DurationSummary;
  /** When the pool was created (epoch ms). */
  readonly startedAt: number;
  /** When it finished stopping (epoch ms). */
  readonly stoppedAt: number | undefined;
}
