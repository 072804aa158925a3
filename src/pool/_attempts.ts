/**
 * How an attempt ends: a success settles the job; a failure settles it or, while it has
 * retries left, schedules the next attempt after an exponential backoff.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { describe } from "./_fn_keys.ts";
import type { Guards } from "./_guards.ts";
import type { JobQueue } from "./_job_queue.ts";
import { BACKOFF, DONE, type JobRecord, QUEUED, type Settle } from "./_job_record.ts";
import type { PoolCounters } from "./_pool_counters.ts";
import { type ErrorData, STATUS_ERROR, STATUS_OK } from "./_protocol.ts";
import { poolErrorData } from "./job_error.ts";

const log = getLogger(["plugsconc", "pool"]);

/** What {@linkcode Attempts} needs of the pool. */
export interface AttemptsDeps {
  /** Upper bound of a retry delay, in ms (`maxRetryDelayMs`). */
  readonly maxRetryDelayMs: number;
  readonly queue: JobQueue;
  readonly counters: PoolCounters;
  readonly guards: Guards;
  readonly settle: Settle;
  /** Whether a failed attempt may be retried now: not once the pool is shutting down. */
  canRetry(): boolean;
  /** Dispatches queued jobs. */
  readonly pump: () => void;
}

/** Ends attempts, and holds the jobs waiting for their retry. */
export class Attempts {
  readonly #deps: AttemptsDeps;
  readonly #backoff = new Set<JobRecord>();

  constructor(deps: AttemptsDeps) {
    this.#deps = deps;
  }

  /**
   * An attempt ended in its worker (returned, threw, or was skipped), or its worker was lost
   * (`STATUS_ERROR` with the crash). A pending timeout overrides the outcome.
   */
  conclude(rec: JobRecord, status: number, payload: unknown, runMs: number): void {
    this.#deps.guards.clearKill(rec);
    rec.slot = undefined;
    rec.runMs += runMs;
    if (rec.state === DONE) return;
    rec.clearTimer();
    if (rec.pendingError !== undefined) {
      // A timed-out attempt that stopped: it failed, whatever it returned.
      const error = rec.pendingError;
      rec.pendingError = undefined;
      this.#fail(rec, error);
    } else if (status === STATUS_OK) {
      this.#deps.settle(rec, "succeeded", payload, undefined);
    } else if (status === STATUS_ERROR) {
      this.#fail(rec, payload as ErrorData);
    } else {
      this.#fail(
        rec,
        poolErrorData("POOL_WORKER_CRASHED", "the worker skipped a job it was not asked to skip"),
      );
    }
  }

  /** A job waiting for its retry settled (cancelled, shut down): it waits no more. */
  forget(rec: JobRecord): void {
    this.#backoff.delete(rec);
  }

  /** The jobs waiting for their retry, as a copy (settling them changes the set). */
  waiting(): JobRecord[] {
    return [...this.#backoff];
  }

  #fail(rec: JobRecord, error: ErrorData): void {
    const deps = this.#deps;
    const retry = error.noRetry !== true && rec.attempt <= rec.maxRetries &&
      rec.transfer === undefined && deps.canRetry();
    if (!retry) {
      deps.settle(rec, "failed", undefined, error);
      return;
    }
    rec.state = BACKOFF;
    deps.counters.retried++;
    const delay = Math.min(
      deps.maxRetryDelayMs,
      rec.retryDelayMs * rec.multiplier ** (rec.attempt - 1),
    );
    rec.backoffMs += delay;
    this.#backoff.add(rec);
    log.debug("job {id} ({fn}) failed (attempt {attempt}): {message}; retrying in {delay} ms", {
      id: rec.id,
      fn: describe(rec.fn),
      attempt: rec.attempt,
      message: error.message,
      delay,
    });
    rec.timer = setTimeout(this.#retry, delay, rec);
  }

  readonly #retry = (rec: JobRecord): void => {
    rec.timer = undefined;
    if (rec.state !== BACKOFF) return;
    this.#backoff.delete(rec);
    rec.state = QUEUED;
    this.#deps.queue.unshift(rec);
    this.#deps.pump();
  };
}
