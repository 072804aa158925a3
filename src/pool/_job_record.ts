/**
 * The pool's record of one job, from `submit` until its result, and the states it goes
 * through: `QUEUED` -> `SENT` (-> `RUNNING`, for a guarded job) -> `DONE`, with `BACKOFF`
 * between a failed attempt and its retry.
 *
 * @module
 */
import { checkCount, checkMs } from "./_check.ts";
import type { FnKey } from "./_fn_keys.ts";
import type { ErrorData } from "./_protocol.ts";
import type { WorkerSlot } from "./_worker_slot.ts";
import type { Job, JobResult, JobStatus } from "./types.ts";

/** A `setTimeout` handle. */
export type Timer = ReturnType<typeof setTimeout>;

/** In the pool's queue. */
export const QUEUED = 0;
/** Sent to a worker; whether it started is unknown (unguarded jobs stay here). */
export const SENT = 1;
/** A guarded job its worker said it started. */
export const RUNNING = 2;
/** Failed, waiting for its retry. */
export const BACKOFF = 3;
/** Settled: its result is out. */
export const DONE = 4;

/** The pool's defaults of a job's fields (`timeoutMs` 0: none). */
export interface JobDefaults {
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly retryDelayMs: number;
  readonly retryMultiplier: number;
}

/** Ends a job: its result is final. The pool implements it; its helpers call it. */
export type Settle = (
  rec: JobRecord,
  status: JobStatus,
  value: unknown,
  error: ErrorData | undefined,
  reason?: unknown,
) => void;

/**
 * Checks a job's number fields and deadline (the module and function are checked by
 * `FnKeys.get`).
 *
 * @throws {RangeError} for a field out of range
 */
export function checkJob(job: Job<unknown>): void {
  checkMs("timeoutMs", job.timeoutMs, 1);
  checkCount("maxRetries", job.maxRetries, 0);
  checkMs("retryDelayMs", job.retryDelayMs, 0);
  checkMs("retryMultiplier", job.retryMultiplier, 1, 1000);
  if (job.deadline !== undefined && !Number.isFinite(+job.deadline)) {
    throw new RangeError(`deadline must be a time, got ${String(job.deadline)}`);
  }
}

/** The pool's record of one job. A class with fixed fields: one allocation per job. */
export class JobRecord {
  readonly id: number;
  readonly fn: FnKey;
  input: unknown;
  transfer: Transferable[] | undefined;
  readonly guarded: boolean;
  readonly signal: AbortSignal | undefined;
  readonly timeoutMs: number;
  readonly deadline: number;
  readonly maxRetries: number;
  readonly retryDelayMs: number;
  readonly multiplier: number;
  readonly submittedAt: number;
  state = QUEUED;
  attempt = 0;
  slot: WorkerSlot | undefined = undefined;
  /** The estimate this job adds to its worker's backlog. */
  est = 0;
  runMs = 0;
  backoffMs = 0;
  startedAt = 0;
  /** The limit or backoff timer. */
  timer: Timer | undefined = undefined;
  deadlineTimer: Timer | undefined = undefined;
  killTimer: Timer | undefined = undefined;
  onAbort: (() => void) | undefined = undefined;
  /** Why the running attempt is being stopped (a timeout): its outcome once it stops. */
  pendingError: ErrorData | undefined = undefined;
  resolve!: (result: JobResult<never>) => void;

  constructor(id: number, fn: FnKey, job: Job<unknown>, defaults: JobDefaults, now: number) {
    this.id = id;
    this.fn = fn;
    this.input = job.input;
    this.transfer = job.transfer;
    this.signal = job.signal;
    this.timeoutMs = job.timeoutMs ?? defaults.timeoutMs;
    const deadline = job.deadline;
    this.deadline = deadline === undefined ? 0 : +deadline;
    this.maxRetries = job.maxRetries ?? defaults.maxRetries;
    this.retryDelayMs = job.retryDelayMs ?? defaults.retryDelayMs;
    this.multiplier = job.retryMultiplier ?? defaults.retryMultiplier;
    this.guarded = this.signal !== undefined || this.timeoutMs > 0 || this.deadline !== 0;
    this.submittedAt = now;
  }

  /** Clears the limit or backoff timer, if one is set. */
  clearTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}
