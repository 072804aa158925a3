import { getLogger } from "@logtape/logtape";
import { Attempts } from "./_attempts.ts";
import { checkMs } from "./_check.ts";
import { FnKeys } from "./_fn_keys.ts";
import { Guards } from "./_guards.ts";
import { JobQueue } from "./_job_queue.ts";
import {
  BACKOFF,
  checkJob,
  DONE,
  type JobDefaults,
  JobRecord,
  QUEUED,
  RUNNING,
  type Settle,
} from "./_job_record.ts";
import { PoolCounters } from "./_pool_counters.ts";
import { toErrorData } from "./_protocol.ts";
import { Workers } from "./_workers.ts";
import { resultToError, toJobError } from "./job_error.ts";
import { PoolError } from "./pool_error.ts";
import type { Job, JobResult, PoolMetrics, PoolState } from "./types.ts";
import { resolveOptions, type WorkerPoolOptions } from "./worker_pool_options.ts";

const log = getLogger(["plugsconc", "pool"]);

/** Options of {@linkcode WorkerPool.stop} and {@linkcode WorkerPool.shutdown}. */
export interface StopOptions {
  /** After this long (ms), {@linkcode WorkerPool.terminate} what is left. Default: no limit. */
  timeoutMs?: number;
}

/**
 * A pool of Web Workers that run jobs: exported functions of modules, called with a
 * structured-cloneable input. Jobs wait in a bounded queue; each worker imports a module once
 * and runs its jobs one at a time.
 *
 * Job semantics: retries with exponential backoff (`maxRetries`, `retryDelayMs`,
 * `retryMultiplier`; errors, timeouts and crashes are retried, cancellations, deadlines and
 * invalid jobs are not), a per-attempt `timeoutMs`, an overall `deadline`, cancellation by
 * `signal` (its reason reaches the job as `ctx.signal.reason`). A job that does not stop
 * within `killGraceMs` after its signal aborted has its worker terminated; a job that throws,
 * or crashes its worker (an uncaught error in a timer, `close()`, `Deno.exit()`), fails with
 * the error's message and stack. A terminated or crashed worker is replaced; jobs queued
 * behind the culprit on that worker are sent again without counting an attempt.
 *
 * Lifecycle: {@linkcode stop} (no new jobs; finish the queued and running ones),
 * {@linkcode shutdown} (finish the running ones; queued ones are cancelled with
 * `POOL_SHUTDOWN`), {@linkcode terminate} (cancel everything now). Disposing the pool
 * terminates it: by the end of an `await using` scope, every result that matters has been
 * awaited, and waiting for the rest could hang on a job without a timeout; call `stop()` first
 * to drain. Each ends by logging the metrics at `info`.
 *
 * Permissions: workers inherit the permissions of the host process (Deno's default for
 * `new Worker`), so a job module can do anything the host can. Only submit modules you trust
 * as much as the host's own code; plugins run in subprocesses, never in this pool.
 *
 * @example
 * ```ts
 * await using pool = new WorkerPool({ maxWorkers: 2 });
 * const result = await pool.submit({
 *   module: new URL("./jobs/sum.ts", import.meta.url),
 *   fn: "sum",
 *   input: [1, 2, 3],
 *   timeoutMs: 5_000,
 *   maxRetries: 2,
 * });
 * if (result.ok) console.log(result.value); // 6
 * else console.error(result.error?.message, result.error?.stack);
 * ```
 */
export class WorkerPool implements AsyncDisposable {
  readonly #maxWorkers: number;
  readonly #queueLimit: number;
  readonly #defaults: JobDefaults;
  readonly #queue = new JobQueue();
  readonly #fns = new FnKeys();
  readonly #counters = new PoolCounters();
  // The helpers below reach the pool only through what their constructors are given.
  readonly #guards: Guards;
  readonly #attempts: Attempts;
  readonly #workers: Workers;
  #nextId = 1;
  #pending = 0;
  #pumpScheduled = false;
  #state: PoolState = "running";
  #closing: Promise<void> | undefined;
  #resolveClosing: (() => void) | undefined;
  #closeMode = "";

  /** @throws {RangeError} for an option out of range */
  constructor(options: WorkerPoolOptions = {}) {
    const resolved = resolveOptions(options);
    this.#maxWorkers = resolved.maxWorkers;
    this.#queueLimit = resolved.queueLimit;
    this.#defaults = resolved.jobDefaults;
    const queue = this.#queue;
    const counters = this.#counters;
    const settle = this.#settle;
    const pump = this.#pump;
    const guards = this.#guards = new Guards({
      killGraceMs: resolved.killGraceMs,
      queue,
      settle,
      kill: (slot, crash, why) => this.#workers.kill(slot, crash, why),
    });
    const attempts = this.#attempts = new Attempts({
      maxRetryDelayMs: resolved.maxRetryDelayMs,
      queue,
      counters,
      guards,
      settle,
      canRetry: () => this.#state === "running" || this.#state === "stopping",
      pump,
    });
    this.#workers = new Workers({
      maxWorkers: resolved.maxWorkers,
      name: resolved.name,
      queue,
      counters,
      guards,
      attempts,
      settle,
      stopped: () => this.#state === "stopped",
      pump,
    });
  }

  /** Number of workers the pool runs at most. */
  get maxWorkers(): number {
    return this.#maxWorkers;
  }

  /** Jobs that may wait in the queue. */
  get queueLimit(): number {
    return this.#queueLimit;
  }

  /** `running`, `stopping`, `shutting-down` or `stopped`. */
  get state(): PoolState {
    return this.#state;
  }

  /**
   * Queues a job. Resolves with its {@linkcode JobResult} when it succeeded, failed (after its
   * retries) or was cancelled; never rejects once the job is accepted.
   *
   * @throws {PoolError} (as a rejection) `POOL_QUEUE_FULL` when `queueLimit` jobs are waiting,
   *   `POOL_STOPPED` after `stop`, `shutdown` or `terminate`
   * @throws {TypeError | RangeError} (as a rejection) for a malformed job
   */
  submit<O = unknown, I = unknown>(job: Job<I>): Promise<JobResult<O>> {
    if (this.#state !== "running") {
      this.#counters.rejected++;
      return Promise.reject(
        new PoolError(
          "POOL_STOPPED",
          `the worker pool is ${this.#state} and accepts no new jobs`,
          { details: { state: this.#state } },
        ),
      );
    }
    const queued = this.#queue.size;
    if (queued >= this.#queueLimit) {
      this.#counters.rejected++;
      return Promise.reject(
        new PoolError(
          "POOL_QUEUE_FULL",
          `the worker pool's queue is full (${queued} jobs waiting, limit ` +
            `${this.#queueLimit}): submit again after some jobs finish, or raise ` +
            "worker_pool.queue_limit",
          { details: { queueLimit: this.#queueLimit, queueDepth: queued } },
        ),
      );
    }
    let rec: JobRecord;
    try {
      const fn = this.#fns.get(job);
      checkJob(job);
      rec = new JobRecord(this.#nextId++, fn, job, this.#defaults, performance.now());
    } catch (e) {
      this.#counters.rejected++;
      return Promise.reject(e);
    }
    const promise = new Promise<JobResult<O>>((resolve) => {
      rec.resolve = resolve as (r: JobResult<never>) => void;
    });
    this.#counters.submitted++;
    this.#pending++;
    if (rec.guarded && !this.#guards.arm(rec)) return promise;
    this.#queue.push(rec);
    if (!this.#pumpScheduled) {
      this.#pumpScheduled = true;
      queueMicrotask(this.#pump);
    }
    return promise;
  }

  /**
   * Like {@linkcode submit}, but resolves with the job's value and rejects when it did not
   * succeed: with the abort reason when it was cancelled by its signal, else a
   * {@linkcode PoolError} (`POOL_JOB_FAILED` with the job's error as `cause`, or
   * `POOL_TIMEOUT`, `POOL_DEADLINE`, `POOL_WORKER_CRASHED`, `POOL_JOB_INVALID`,
   * `POOL_SHUTDOWN`, `POOL_TERMINATED`).
   */
  async run<O = unknown, I = unknown>(job: Job<I>): Promise<O> {
    const result = await this.submit<O, I>(job);
    if (result.ok) return result.value as O;
    throw resultToError(result, job);
  }

  /** Current counters and gauges. */
  metrics(): PoolMetrics {
    return this.#counters.view({
      state: this.#state,
      pending: this.#pending,
      queueDepth: this.#queue.size,
      running: this.#workers.running,
      workers: this.#workers.size,
      maxWorkers: this.#maxWorkers,
    });
  }

  /**
   * Accepts no new jobs and resolves when every queued, running and retrying job has
   * settled; then the workers are terminated. Idempotent.
   *
   * @param options `timeoutMs`: then {@linkcode terminate} what is left
   * @throws {RangeError} for a bad `timeoutMs`
   */
  stop(options: StopOptions = {}): Promise<void> {
    checkMs("timeoutMs", options.timeoutMs, 0);
    if (this.#state === "running") {
      this.#state = "stopping";
      this.#closeMode = "stop";
      log.debug("worker pool stopping: {pending} jobs to finish", { pending: this.#pending });
    }
    return this.#bounded(this.#closed(), options.timeoutMs);
  }

  /**
   * Accepts no new jobs, cancels the queued ones and those waiting to retry (their result:
   * `cancelled`, error `POOL_SHUTDOWN`, `reason` = the given reason), and resolves when the
   * running ones have settled (they are not retried). Idempotent; overrides `stop()`.
   *
   * @param reason given to the dropped jobs (`JobResult.reason`, and `cause` of the error)
   * @param options `timeoutMs`: then {@linkcode terminate} what is left
   */
  shutdown(reason?: unknown, options: StopOptions = {}): Promise<void> {
    checkMs("timeoutMs", options.timeoutMs, 0);
    if (this.#state === "running" || this.#state === "stopping") {
      this.#state = "shutting-down";
      this.#closeMode = "shutdown";
      const error = closingError(
        "POOL_SHUTDOWN",
        "the worker pool is shutting down; the job was dropped from the queue",
        reason,
      );
      const dropped = this.#dropWaiting(reason ?? error, error);
      log.debug("worker pool shutting down: {dropped} queued jobs dropped", { dropped });
    }
    return this.#bounded(this.#closed(), options.timeoutMs);
  }

  #bounded(closed: Promise<void>, timeoutMs: number | undefined): Promise<void> {
    if (timeoutMs === undefined || this.#state === "stopped") return closed;
    const timer = setTimeout(() => {
      log.warning("worker pool did not stop within {timeoutMs} ms; terminating it", {
        timeoutMs,
        pending: this.#pending,
      });
      this.terminate(new Error(`the worker pool did not stop within ${timeoutMs} ms`));
    }, timeoutMs);
    return closed.finally(() => clearTimeout(timer));
  }

  /**
   * Cancels every job now: queued, retrying and running ones (result `cancelled`, error
   * `POOL_TERMINATED`), and terminates the workers without waiting. Idempotent.
   */
  terminate(reason?: unknown): Promise<void> {
    if (this.#state !== "stopped") {
      const closed = this.#closed();
      this.#closeMode = "terminate";
      const error = closingError(
        "POOL_TERMINATED",
        "the worker pool was terminated; the job was cancelled",
        reason,
      );
      this.#state = "shutting-down";
      this.#workers.terminateAll((rec) => {
        this.#guards.clearKill(rec);
        rec.slot = undefined;
        if (rec.state === DONE) return;
        if (rec.state === RUNNING) rec.runMs += performance.now() - rec.startedAt;
        this.#settle(rec, "cancelled", undefined, toErrorData(error), reason ?? error);
      });
      this.#dropWaiting(reason ?? error, error);
      this.#finish();
      return closed;
    }
    return this.#closed();
  }

  /** Terminates the pool (see the class doc for why not `stop`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.terminate();
  }

  #closed(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      this.#resolveClosing = resolve;
    });
    if (this.#state === "stopped") this.#resolveClosing!();
    else if (this.#pending === 0) this.#finish();
    return this.#closing;
  }

  /** Cancels queued and backing-off jobs; returns how many. */
  #dropWaiting(reason: unknown, error: PoolError): number {
    let dropped = 0;
    const data = toErrorData(error);
    for (const rec of this.#queue.drain()) {
      if (rec.state !== QUEUED) continue;
      dropped++;
      this.#settle(rec, "cancelled", undefined, data, reason);
    }
    for (const rec of this.#attempts.waiting()) {
      dropped++;
      this.#settle(rec, "cancelled", undefined, data, reason);
    }
    return dropped;
  }

  #finish(): void {
    if (this.#state === "stopped" || this.#state === "running") return;
    this.#state = "stopped";
    this.#counters.stoppedAt = Date.now();
    this.#workers.terminateAll((rec) => this.#guards.clearKill(rec));
    const m = this.metrics();
    log.info(
      "worker pool stopped ({mode}): {submitted} jobs submitted, {succeeded} succeeded, " +
        "{failed} failed, {cancelled} cancelled, {retried} retries, {rejected} rejected",
      {
        mode: this.#closeMode,
        ...m,
        waitMeanMs: m.waitMs.meanMs,
        runMeanMs: m.runMs.meanMs,
        uptimeMs: (m.stoppedAt ?? 0) - m.startedAt,
      },
    );
    this.#resolveClosing?.();
  }

  /** Dispatches queued jobs to workers with room, one message per worker. */
  readonly #pump = (): void => {
    this.#pumpScheduled = false;
    const queue = this.#queue;
    while (queue.size > 0 && this.#state !== "stopped") {
      const rec = queue.peek();
      if (rec === undefined) break;
      const slot = this.#workers.pick(rec.fn.estMs);
      if (slot === undefined) break;
      slot.fill(queue);
    }
  };

  readonly #settle: Settle = (rec, status, value, error, reason) => {
    if (rec.state === BACKOFF) this.#attempts.forget(rec);
    rec.state = DONE;
    rec.clearTimer();
    this.#guards.release(rec);
    this.#pending--;
    const runMs = rec.runMs;
    const waitMs = Math.max(0, performance.now() - rec.submittedAt - runMs - rec.backoffMs);
    this.#counters.settled(status, rec.attempt, waitMs, runMs);
    rec.input = undefined;
    const result: JobResult<unknown> = {
      id: rec.id,
      status,
      ok: status === "succeeded",
      value,
      error: error === undefined ? undefined : toJobError(error),
      reason,
      attempts: rec.attempt,
      waitMs,
      runMs,
    };
    rec.resolve(result as JobResult<never>);
    if (this.#pending === 0 && (this.#state === "stopping" || this.#state === "shutting-down")) {
      if (this.#closeMode !== "terminate") this.#finish();
    }
  };
}

/** The error of the jobs `shutdown` drops or `terminate` cancels, with the reason given. */
function closingError(
  code: "POOL_SHUTDOWN" | "POOL_TERMINATED",
  message: string,
  reason: unknown,
): PoolError {
  return new PoolError(
    code,
    message + (reason === undefined ? "" : `: ${String((reason as Error)?.message ?? reason)}`),
    reason === undefined ? {} : { cause: reason },
  );
}
