/**
 * The limits of guarded jobs (those with a `signal`, `timeoutMs` or `deadline`): the
 * per-attempt timeout, the deadline, cancellation by signal, and the kill grace after any of
 * them, when a job that does not stop has its worker terminated.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { MAX_TIMER_MS } from "./_check.ts";
import { describe } from "./_fn_keys.ts";
import type { JobQueue } from "./_job_queue.ts";
import { DONE, type JobRecord, QUEUED, RUNNING, type Settle } from "./_job_record.ts";
import { type ErrorData, toErrorData } from "./_protocol.ts";
import type { WorkerSlot } from "./_worker_slot.ts";
import { poolErrorData } from "./job_error.ts";

const log = getLogger(["plugsconc", "pool"]);

/** The error of a job whose deadline passed; never retried. */
export function deadlineError(rec: JobRecord): ErrorData {
  return {
    ...poolErrorData(
      "POOL_DEADLINE",
      `job ${rec.id} (${describe(rec.fn)}) missed its deadline ` +
        `${new Date(rec.deadline).toISOString()} after ${rec.attempt} attempt(s)`,
    ),
    noRetry: true,
  };
}

/** What {@linkcode Guards} needs of the pool. */
export interface GuardsDeps {
  /** How long a job may run on after its signal aborted, in ms (`killGraceMs`). */
  readonly killGraceMs: number;
  readonly queue: JobQueue;
  readonly settle: Settle;
  /** Terminates a worker whose job did not stop (the pool replaces it). */
  kill(slot: WorkerSlot, crash: ErrorData | undefined, why: string): void;
}

/** Arms and disarms the timers and abort listeners of guarded jobs. */
export class Guards {
  readonly #deps: GuardsDeps;

  constructor(deps: GuardsDeps) {
    this.#deps = deps;
  }

  /** Arms the deadline and the abort listener; false if the job is already settled. */
  arm(rec: JobRecord): boolean {
    const settle = this.#deps.settle;
    if (rec.signal?.aborted) {
      settle(rec, "cancelled", undefined, toErrorData(rec.signal.reason), rec.signal.reason);
      return false;
    }
    if (rec.deadline !== 0) {
      const left = rec.deadline - Date.now();
      if (left <= 0) {
        settle(rec, "failed", undefined, deadlineError(rec));
        return false;
      }
      if (left <= MAX_TIMER_MS) rec.deadlineTimer = setTimeout(this.#onDeadline, left, rec);
    }
    if (rec.signal !== undefined) {
      rec.onAbort = () => this.#onAbort(rec);
      rec.signal.addEventListener("abort", rec.onAbort, { once: true });
    }
    return true;
  }

  /** Disarms the deadline and the abort listener of a job that settled. */
  release(rec: JobRecord): void {
    if (rec.deadlineTimer !== undefined) {
      clearTimeout(rec.deadlineTimer);
      rec.deadlineTimer = undefined;
    }
    if (rec.onAbort !== undefined) {
      rec.signal!.removeEventListener("abort", rec.onAbort);
      rec.onAbort = undefined;
    }
  }

  /** The worker said the job started: its timeout runs from now. */
  started(rec: JobRecord): void {
    rec.startedAt = performance.now();
    if (rec.state === DONE) {
      // Cancelled before this notice came: the worker aborts it when it reads the cancel.
      this.armKill(rec);
      return;
    }
    rec.state = RUNNING;
    if (rec.timeoutMs > 0) rec.timer = setTimeout(this.#onTimeout, rec.timeoutMs, rec);
  }

  /** Terminates the job's worker unless the job stops within the kill grace. */
  armKill(rec: JobRecord): void {
    if (rec.killTimer === undefined) {
      rec.killTimer = setTimeout(this.#onKill, this.#deps.killGraceMs, rec);
    }
  }

  /** The job stopped (or its worker is gone): no kill. */
  clearKill(rec: JobRecord): void {
    if (rec.killTimer !== undefined) {
      clearTimeout(rec.killTimer);
      rec.killTimer = undefined;
    }
  }

  readonly #onTimeout = (rec: JobRecord): void => {
    rec.timer = undefined;
    if (rec.state !== RUNNING || rec.slot === undefined) return;
    rec.pendingError = poolErrorData(
      "POOL_TIMEOUT",
      `job ${rec.id} (${describe(rec.fn)}) timed out after ${rec.timeoutMs} ms ` +
        `(attempt ${rec.attempt})`,
    );
    rec.slot.cancel(
      rec.id,
      new DOMException(`the job timed out after ${rec.timeoutMs} ms`, "TimeoutError"),
    );
    this.armKill(rec);
  };

  readonly #onDeadline = (rec: JobRecord): void => {
    rec.deadlineTimer = undefined;
    if (rec.state === DONE) return;
    if (rec.state === QUEUED) this.#deps.queue.forget();
    if (rec.slot !== undefined) {
      rec.slot.cancel(rec.id, new DOMException("the job's deadline passed", "TimeoutError"));
    }
    if (rec.state === RUNNING) this.armKill(rec);
    this.#deps.settle(rec, "failed", undefined, deadlineError(rec));
  };

  #onAbort(rec: JobRecord): void {
    if (rec.state === DONE) return;
    const reason = rec.signal!.reason;
    if (rec.state === QUEUED) this.#deps.queue.forget();
    if (rec.slot !== undefined) rec.slot.cancel(rec.id, reason);
    if (rec.state === RUNNING) this.armKill(rec);
    this.#deps.settle(rec, "cancelled", undefined, toErrorData(reason), reason);
  }

  readonly #onKill = (rec: JobRecord): void => {
    rec.killTimer = undefined;
    const slot = rec.slot;
    if (slot === undefined || slot.dead) return;
    log.warning(
      "job {id} ({fn}) did not stop within {graceMs} ms after its signal aborted; " +
        "terminating worker {worker}",
      { id: rec.id, fn: describe(rec.fn), graceMs: this.#deps.killGraceMs, worker: slot.name },
    );
    this.#deps.kill(slot, undefined, "killed");
  };
}
