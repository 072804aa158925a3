import { getLogger } from "@logtape/logtape";
import type { Config } from "../config/mod.ts";
import { Deque } from "./_deque.ts";
import {
  type ErrorData,
  FROM_WORKER_CRASH,
  FROM_WORKER_EXIT,
  FROM_WORKER_RESULTS,
  RESULT_FIELDS,
  STATUS_ERROR,
  STATUS_OK,
  TO_WORKER_CANCEL,
  TO_WORKER_DEFINE,
  TO_WORKER_RUN,
  toErrorData,
} from "./_protocol.ts";
import { PoolError, type PoolErrorCode } from "./pool_error.ts";
import type {
  DurationSummary,
  Job,
  JobError,
  JobResult,
  JobStatus,
  PoolMetrics,
  PoolState,
} from "./types.ts";

const log = getLogger(["plugsconc", "pool"]);

const WORKER_URL = new URL("./_worker.ts", import.meta.url);

/**
 * A worker is sent more jobs while the estimated run time of those it holds stays under this
 * (ms): trivial jobs go in batches (one message for many), so their cost is not one message
 * round trip each.
 */
const WINDOW_MS = 1;
/**
 * A worker running one job may get a second one to start right after it (no idle round trip
 * between the two) while both together are estimated under this (ms). Longer jobs go one at a
 * time, so that none waits long behind another while a second worker idles.
 */
const PREFETCH_MS = 20;
/** At most this many jobs in flight per worker. */
const MAX_IN_FLIGHT = 512;
/** The estimate of a function not measured yet: large, so its first jobs go one per worker. */
const UNKNOWN_EST_MS = 1e6;
/** Longest setTimeout delay; a deadline further away is checked at dispatch instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of {@linkcode WorkerPool}. Each field documents its default. */
export interface WorkerPoolOptions {
  /** Number of workers, started on demand. Default: `min(navigator.hardwareConcurrency, 4)`. */
  maxWorkers?: number;
  /** Jobs that may wait in the queue; one more is refused (`POOL_QUEUE_FULL`). Default: 1000. */
  queueLimit?: number;
  /** Default `timeoutMs` of a job (per attempt). Default: none. */
  timeoutMs?: number;
  /** Default `maxRetries` of a job. Default: 0. */
  maxRetries?: number;
  /** Default `retryDelayMs` of a job. Default: 100. */
  retryDelayMs?: number;
  /** Default `retryMultiplier` of a job. Default: 2. */
  retryMultiplier?: number;
  /** Upper bound of a retry delay, in ms. Default: 30 000. */
  maxRetryDelayMs?: number;
  /**
   * How long a cancelled or timed-out job may keep running after its signal aborted, before
   * its worker is terminated (and replaced), in ms. Default: 1000.
   */
  killGraceMs?: number;
  /** Prefix of the workers' names (shown in stack traces). Default: `plugsconc-pool`. */
  name?: string;
}

/** Options of {@linkcode WorkerPool.stop} and {@linkcode WorkerPool.shutdown}. */
export interface StopOptions {
  /** After this long (ms), {@linkcode WorkerPool.terminate} what is left. Default: no limit. */
  timeoutMs?: number;
}

/**
 * Pool options from the config's `worker_pool` section: `max_workers` is an upper bound
 * (the pool uses `min(max_workers, navigator.hardwareConcurrency)`).
 */
export function poolOptionsFromConfig(section: Config["worker_pool"]): WorkerPoolOptions {
  const cpus = navigator.hardwareConcurrency || 1;
  return {
    maxWorkers: Math.max(1, Math.min(cpus, section.max_workers)),
    queueLimit: section.queue_limit,
  };
}

type Timer = ReturnType<typeof setTimeout>;

const QUEUED = 0;
/** Sent to a worker; whether it started is unknown (unguarded jobs stay here). */
const SENT = 1;
/** A guarded job its worker said it started. */
const RUNNING = 2;
const BACKOFF = 3;
const DONE = 4;

/** A job module's export, as the workers know it (by a small integer key). */
interface FnKey {
  readonly key: number;
  readonly url: string;
  readonly name: string;
  /** Estimated run time (ms), learned from results. */
  estMs: number;
  samples: number;
}

/** The pool's record of one job. A class with fixed fields: one allocation per job. */
class Rec {
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
  slot: Slot | undefined = undefined;
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

  constructor(
    id: number,
    fn: FnKey,
    job: Job<unknown>,
    defaults: Required<Omit<WorkerPoolOptions, "timeoutMs" | "name">> & { timeoutMs: number },
    now: number,
  ) {
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
}

/** One worker and the jobs sent to it, in the order it runs them. */
class Slot {
  readonly worker: Worker;
  readonly name: string;
  readonly inflight = new Deque<Rec>();
  readonly known = new Set<number>();
  backlogMs = 0;
  dead = false;
  constructor(worker: Worker, name: string) {
    this.worker = worker;
    this.name = name;
  }
}

class Summary {
  count = 0;
  totalMs = 0;
  maxMs = 0;
  add(ms: number): void {
    this.count++;
    this.totalMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
  }
  view(): DurationSummary {
    return {
      count: this.count,
      totalMs: this.totalMs,
      maxMs: this.maxMs,
      meanMs: this.count === 0 ? 0 : this.totalMs / this.count,
    };
  }
}

function checkCount(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min)) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`);
  }
}

/** Checks a number option; durations are capped at the longest `setTimeout` delay. */
function checkMs(name: string, value: number | undefined, min: number, max = MAX_TIMER_MS): void {
  if (value !== undefined && !(Number.isFinite(value) && value >= min && value <= max)) {
    throw new RangeError(`${name} must be a number from ${min} to ${max}, got ${value}`);
  }
}

function poolErrorData(code: PoolErrorCode, message: string, cause?: ErrorData): ErrorData {
  const data: ErrorData = { name: "PoolError", code, message };
  if (cause !== undefined) {
    data.cause = cause;
    if (cause.stack !== undefined) data.stack = cause.stack;
  }
  return data;
}

function toJobError(data: ErrorData): JobError {
  const error: {
    name: string;
    message: string;
    stack?: string;
    code?: string;
    cause?: JobError;
  } = { name: data.name, message: data.message };
  if (data.stack !== undefined) error.stack = data.stack;
  if (data.code !== undefined) error.code = data.code;
  if (data.cause !== undefined) error.cause = toJobError(data.cause);
  return error;
}

/** Rebuilds a throwable Error from {@linkcode JobError} data (name, message, stack, cause). */
export function jobErrorToError(error: JobError): Error {
  const e = new Error(error.message, error.cause ? { cause: jobErrorToError(error.cause) } : {});
  e.name = error.name;
  if (error.stack !== undefined) e.stack = error.stack;
  if (error.code !== undefined) (e as Error & { code?: string }).code = error.code;
  return e;
}

/** Whether a worker holding `count` jobs (estimated `backlogMs`) may get one more. */
function hasRoom(count: number, backlogMs: number, estMs: number): boolean {
  if (count === 0) return true;
  if (count >= MAX_IN_FLIGHT) return false;
  const total = backlogMs + estMs;
  return total <= WINDOW_MS || (count === 1 && total <= PREFETCH_MS);
}

function describe(fn: FnKey): string {
  return `${fn.name} of ${fn.url}`;
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
  readonly #killGraceMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #name: string;
  readonly #defaults: Required<Omit<WorkerPoolOptions, "timeoutMs" | "name">> & {
    timeoutMs: number;
  };
  readonly #queue = new Deque<Rec>();
  readonly #backoff = new Set<Rec>();
  #slots: Slot[] = [];
  readonly #fns = new Map<string, Map<string, FnKey>>();
  #nextKey = 0;
  #nextId = 1;
  #spawned = 0;
  #queued = 0;
  #pending = 0;
  #pumpScheduled = false;
  #state: PoolState = "running";
  #closing: Promise<void> | undefined;
  #resolveClosing: (() => void) | undefined;
  #closeMode = "";
  // metrics
  readonly #startedAt = Date.now();
  #stoppedAt: number | undefined;
  #submitted = 0;
  #rejected = 0;
  #succeeded = 0;
  #failed = 0;
  #cancelled = 0;
  #retried = 0;
  #replaced = 0;
  #attempts = 0;
  readonly #wait = new Summary();
  readonly #run = new Summary();

  /** @throws {RangeError} for an option out of range */
  constructor(options: WorkerPoolOptions = {}) {
    checkCount("maxWorkers", options.maxWorkers, 1);
    checkCount("queueLimit", options.queueLimit, 0);
    checkMs("timeoutMs", options.timeoutMs, 1);
    checkCount("maxRetries", options.maxRetries, 0);
    checkMs("retryDelayMs", options.retryDelayMs, 0);
    checkMs("retryMultiplier", options.retryMultiplier, 1, 1000);
    checkMs("maxRetryDelayMs", options.maxRetryDelayMs, 0);
    checkMs("killGraceMs", options.killGraceMs, 0);
    this.#maxWorkers = options.maxWorkers ??
      Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4));
    this.#queueLimit = options.queueLimit ?? 1000;
    this.#killGraceMs = options.killGraceMs ?? 1000;
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    this.#name = options.name ?? "plugsconc-pool";
    this.#defaults = {
      maxWorkers: this.#maxWorkers,
      queueLimit: this.#queueLimit,
      timeoutMs: options.timeoutMs ?? 0,
      maxRetries: options.maxRetries ?? 0,
      retryDelayMs: options.retryDelayMs ?? 100,
      retryMultiplier: options.retryMultiplier ?? 2,
      maxRetryDelayMs: this.#maxRetryDelayMs,
      killGraceMs: this.#killGraceMs,
    };
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
      this.#rejected++;
      return Promise.reject(
        new PoolError(
          "POOL_STOPPED",
          `the worker pool is ${this.#state} and accepts no new jobs`,
          { details: { state: this.#state } },
        ),
      );
    }
    if (this.#queued >= this.#queueLimit) {
      this.#rejected++;
      return Promise.reject(
        new PoolError(
          "POOL_QUEUE_FULL",
          `the worker pool's queue is full (${this.#queued} jobs waiting, limit ` +
            `${this.#queueLimit}): submit again after some jobs finish, or raise ` +
            "worker_pool.queue_limit",
          { details: { queueLimit: this.#queueLimit, queueDepth: this.#queued } },
        ),
      );
    }
    let fn: FnKey;
    let rec: Rec;
    try {
      fn = this.#fnKey(job);
      checkMs("timeoutMs", job.timeoutMs, 1);
      checkCount("maxRetries", job.maxRetries, 0);
      checkMs("retryDelayMs", job.retryDelayMs, 0);
      checkMs("retryMultiplier", job.retryMultiplier, 1, 1000);
      if (job.deadline !== undefined && !Number.isFinite(+job.deadline)) {
        throw new RangeError(`deadline must be a time, got ${String(job.deadline)}`);
      }
      rec = new Rec(this.#nextId++, fn, job as Job<unknown>, this.#defaults, performance.now());
    } catch (e) {
      this.#rejected++;
      return Promise.reject(e);
    }
    const promise = new Promise<JobResult<O>>((resolve) => {
      rec.resolve = resolve as (r: JobResult<never>) => void;
    });
    this.#submitted++;
    this.#pending++;
    if (rec.guarded && !this.#guard(rec)) return promise;
    this.#queue.push(rec);
    this.#queued++;
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
    let running = 0;
    for (const slot of this.#slots) running += slot.inflight.size;
    return {
      state: this.#state,
      submitted: this.#submitted,
      rejected: this.#rejected,
      succeeded: this.#succeeded,
      failed: this.#failed,
      cancelled: this.#cancelled,
      retried: this.#retried,
      pending: this.#pending,
      queueDepth: this.#queued,
      running,
      workers: this.#slots.length,
      maxWorkers: this.#maxWorkers,
      workersReplaced: this.#replaced,
      attempts: this.#attempts,
      waitMs: this.#wait.view(),
      runMs: this.#run.view(),
      startedAt: this.#startedAt,
      stoppedAt: this.#stoppedAt,
    };
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
      const error = new PoolError(
        "POOL_SHUTDOWN",
        "the worker pool is shutting down; the job was dropped from the queue" +
          (reason === undefined ? "" : `: ${String((reason as Error)?.message ?? reason)}`),
        reason === undefined ? {} : { cause: reason },
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
      const error = new PoolError(
        "POOL_TERMINATED",
        "the worker pool was terminated; the job was cancelled" +
          (reason === undefined ? "" : `: ${String((reason as Error)?.message ?? reason)}`),
        reason === undefined ? {} : { cause: reason },
      );
      this.#state = "shutting-down";
      const slots = this.#slots;
      this.#slots = [];
      for (const slot of slots) {
        slot.dead = true;
        slot.worker.terminate();
        for (const rec of slot.inflight.drain()) {
          this.#clearKill(rec);
          rec.slot = undefined;
          if (rec.state === DONE) continue;
          if (rec.state === RUNNING) rec.runMs += performance.now() - rec.startedAt;
          this.#settle(rec, "cancelled", undefined, toErrorData(error), reason ?? error);
        }
      }
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
    const queued = this.#queue.drain();
    this.#queued = 0;
    for (const rec of queued) {
      if (rec.state !== QUEUED) continue;
      dropped++;
      this.#settle(rec, "cancelled", undefined, data, reason);
    }
    for (const rec of [...this.#backoff]) {
      dropped++;
      this.#settle(rec, "cancelled", undefined, data, reason);
    }
    return dropped;
  }

  #finish(): void {
    if (this.#state === "stopped" || this.#state === "running") return;
    this.#state = "stopped";
    this.#stoppedAt = Date.now();
    for (const slot of this.#slots) {
      slot.dead = true;
      slot.worker.terminate();
      for (const rec of slot.inflight.drain()) this.#clearKill(rec);
    }
    this.#slots = [];
    const m = this.metrics();
    log.info(
      "worker pool stopped ({mode}): {submitted} jobs submitted, {succeeded} succeeded, " +
        "{failed} failed, {cancelled} cancelled, {retried} retries, {rejected} rejected",
      {
        mode: this.#closeMode,
        ...m,
        waitMeanMs: m.waitMs.meanMs,
        runMeanMs: m.runMs.meanMs,
        uptimeMs: (this.#stoppedAt ?? 0) - this.#startedAt,
      },
    );
    this.#resolveClosing?.();
  }

  #fnKey(job: Job<unknown>): FnKey {
    const module = job.module;
    const url = typeof module === "string" ? module : module?.href;
    const name = job.fn ?? "default";
    let byName = this.#fns.get(url);
    let fn = byName?.get(name);
    if (fn !== undefined) return fn;
    if (typeof url !== "string") {
      throw new TypeError(`job.module must be a URL or an absolute URL string, got ${url}`);
    }
    if (!URL.canParse(url)) {
      throw new TypeError(
        `job.module must be an absolute URL (e.g. new URL("./job.ts", import.meta.url)), ` +
          `got ${JSON.stringify(url)}`,
      );
    }
    if (typeof name !== "string" || name === "") {
      throw new TypeError(`job.fn must be the name of an export, got ${String(name)}`);
    }
    fn = { key: this.#nextKey++, url, name, estMs: UNKNOWN_EST_MS, samples: 0 };
    if (byName === undefined) this.#fns.set(url, byName = new Map());
    byName.set(name, fn);
    return fn;
  }

  /** Arms the deadline and the abort listener; false if the job is already settled. */
  #guard(rec: Rec): boolean {
    if (rec.signal?.aborted) {
      this.#settle(rec, "cancelled", undefined, toErrorData(rec.signal.reason), rec.signal.reason);
      return false;
    }
    if (rec.deadline !== 0) {
      const left = rec.deadline - Date.now();
      if (left <= 0) {
        this.#settle(rec, "failed", undefined, this.#deadlineError(rec));
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

  #deadlineError(rec: Rec): ErrorData {
    return {
      ...poolErrorData(
        "POOL_DEADLINE",
        `job ${rec.id} (${describe(rec.fn)}) missed its deadline ` +
          `${new Date(rec.deadline).toISOString()} after ${rec.attempt} attempt(s)`,
      ),
      noRetry: true,
    };
  }

  #spawn(): Slot {
    const name = `${this.#name}-${++this.#spawned}`;
    const worker = new Worker(WORKER_URL, { type: "module", name });
    const slot = new Slot(worker, name);
    worker.onmessage = (event: MessageEvent<unknown[]>) => this.#onMessage(slot, event.data);
    worker.onerror = (event: ErrorEvent) => {
      // The worker's own handlers report uncaught errors; this is what escapes them (an error
      // loading the worker itself). preventDefault keeps it from ending the host.
      event.preventDefault();
      this.#killSlot(slot, {
        name: "Error",
        message: event.message,
        stack: `${event.message}\n    at ${event.filename}:${event.lineno}:${event.colno}`,
      }, "error event");
    };
    worker.onmessageerror = () => {
      this.#killSlot(slot, {
        name: "DataCloneError",
        message: "a message from the worker could not be deserialized",
      }, "message error");
    };
    this.#slots.push(slot);
    log.debug("worker {worker} started", { worker: name });
    return slot;
  }

  /** Dispatches queued jobs to workers with room, one message per worker. */
  readonly #pump = (): void => {
    this.#pumpScheduled = false;
    while (this.#queued > 0 && this.#state !== "stopped") {
      const rec = this.#peekQueued();
      if (rec === undefined) break;
      const slot = this.#pickSlot(rec.fn.estMs);
      if (slot === undefined) break;
      this.#fill(slot);
    }
  };

  #peekQueued(): Rec | undefined {
    let rec = this.#queue.peek();
    while (rec !== undefined && rec.state !== QUEUED) {
      this.#queue.shift();
      rec = this.#queue.peek();
    }
    return rec;
  }

  /** An idle worker, else a new one, else the least loaded one with room. */
  #pickSlot(estMs: number): Slot | undefined {
    let best: Slot | undefined;
    for (const slot of this.#slots) {
      if (slot.inflight.size === 0) return slot;
      if (
        hasRoom(slot.inflight.size, slot.backlogMs, estMs) &&
        (best === undefined || slot.backlogMs < best.backlogMs)
      ) best = slot;
    }
    if (this.#slots.length < this.#maxWorkers) return this.#spawn();
    return best;
  }

  #fill(slot: Slot): void {
    const message: unknown[] = [TO_WORKER_RUN];
    const batch: Rec[] = [];
    let transfer: Transferable[] | undefined;
    let backlog = slot.backlogMs;
    let count = slot.inflight.size;
    const worker = slot.worker;
    for (;;) {
      const rec = this.#peekQueued();
      if (rec === undefined) break;
      const est = rec.fn.estMs;
      if (count > 0 && !hasRoom(count, backlog, est)) break;
      this.#queue.shift();
      this.#queued--;
      if (rec.deadline !== 0 && rec.deadlineTimer === undefined && Date.now() >= rec.deadline) {
        this.#settle(rec, "failed", undefined, this.#deadlineError(rec));
        continue;
      }
      const key = rec.fn.key;
      if (!slot.known.has(key)) {
        worker.postMessage([TO_WORKER_DEFINE, key, rec.fn.url, rec.fn.name]);
        slot.known.add(key);
      }
      message.push(rec.id, key, rec.input, rec.guarded ? 1 : 0, rec.attempt + 1);
      if (rec.transfer !== undefined) (transfer ??= []).push(...rec.transfer);
      rec.est = est;
      backlog += est;
      count++;
      batch.push(rec);
    }
    if (batch.length === 0) return;
    try {
      worker.postMessage(message, transfer === undefined ? undefined : { transfer });
    } catch {
      this.#sendOneByOne(slot, batch);
      return;
    }
    slot.backlogMs = backlog;
    for (const rec of batch) {
      rec.state = SENT;
      rec.slot = slot;
      rec.attempt++;
      slot.inflight.push(rec);
    }
  }

  /** The batch could not be cloned: send each job alone, failing only the bad ones. */
  #sendOneByOne(slot: Slot, batch: readonly Rec[]): void {
    for (const rec of batch) {
      try {
        slot.worker.postMessage(
          [TO_WORKER_RUN, rec.id, rec.fn.key, rec.input, rec.guarded ? 1 : 0, rec.attempt + 1],
          rec.transfer === undefined ? undefined : { transfer: rec.transfer },
        );
      } catch (error) {
        this.#settle(rec, "failed", undefined, {
          ...poolErrorData(
            "POOL_JOB_INVALID",
            `job ${rec.id} (${describe(rec.fn)}): its input cannot be structured-cloned: ${
              (error as Error)?.message ?? String(error)
            }`,
            toErrorData(error),
          ),
          noRetry: true,
        });
        continue;
      }
      rec.state = SENT;
      rec.slot = slot;
      rec.attempt++;
      slot.backlogMs += rec.est;
      slot.inflight.push(rec);
    }
  }

  #onMessage(slot: Slot, m: unknown[]): void {
    if (slot.dead) return;
    switch (m[0]) {
      case FROM_WORKER_RESULTS:
        this.#onResults(slot, m);
        break;
      case FROM_WORKER_CRASH: {
        const data = m[1] as ErrorData;
        this.#killSlot(
          slot,
          poolErrorData(
            "POOL_WORKER_CRASHED",
            `the worker crashed: ${data.name}: ${data.message}`,
            data,
          ),
          "crash",
        );
        break;
      }
      case FROM_WORKER_EXIT:
        this.#killSlot(
          slot,
          poolErrorData(
            "POOL_WORKER_CRASHED",
            `the worker exited: the job called ${String(m[1])}; jobs must return instead`,
          ),
          "exit",
        );
        break;
    }
  }

  #onResults(slot: Slot, m: unknown[]): void {
    const n = m.length;
    for (let i = 2; i < n; i += RESULT_FIELDS) {
      const rec = slot.inflight.shift();
      if (rec === undefined || rec.id !== m[i]) {
        // Cannot happen unless a message was lost; the worker's state is unknown.
        if (rec !== undefined) slot.inflight.unshift(rec);
        this.#killSlot(
          slot,
          poolErrorData("POOL_WORKER_CRASHED", `worker protocol error: unexpected result`),
          "protocol error",
        );
        return;
      }
      slot.backlogMs -= rec.est;
      const status = m[i + 1] as number;
      const runMs = m[i + 3] as number;
      if (status === STATUS_OK || status === STATUS_ERROR) {
        const fn = rec.fn;
        fn.estMs = fn.samples++ === 0 ? runMs : fn.estMs * 0.8 + runMs * 0.2;
        if (fn.estMs < 0.001) fn.estMs = 0.001;
      }
      this.#conclude(rec, status, m[i + 2], runMs);
    }
    if (slot.inflight.size === 0) slot.backlogMs = 0;
    const started = m[1] as number;
    if (started !== -1) {
      const rec = slot.inflight.peek();
      if (rec !== undefined && rec.id === started) this.#onStarted(rec);
    }
    if (this.#queued > 0) this.#pump();
  }

  /** An attempt ended in its worker (returned, threw, or was skipped). */
  #conclude(rec: Rec, status: number, payload: unknown, runMs: number): void {
    this.#clearKill(rec);
    rec.slot = undefined;
    rec.runMs += runMs;
    if (rec.state === DONE) return;
    if (rec.timer !== undefined) {
      clearTimeout(rec.timer);
      rec.timer = undefined;
    }
    if (rec.pendingError !== undefined) {
      // A timed-out attempt that stopped: it failed, whatever it returned.
      const error = rec.pendingError;
      rec.pendingError = undefined;
      this.#failAttempt(rec, error);
    } else if (status === STATUS_OK) {
      this.#settle(rec, "succeeded", payload, undefined);
    } else if (status === STATUS_ERROR) {
      this.#failAttempt(rec, payload as ErrorData);
    } else {
      this.#failAttempt(
        rec,
        poolErrorData("POOL_WORKER_CRASHED", "the worker skipped a job it was not asked to skip"),
      );
    }
  }

  #onStarted(rec: Rec): void {
    rec.startedAt = performance.now();
    if (rec.state === DONE) {
      // Cancelled before this notice came: the worker aborts it when it reads the cancel.
      this.#armKill(rec);
      return;
    }
    rec.state = RUNNING;
    if (rec.timeoutMs > 0) rec.timer = setTimeout(this.#onTimeout, rec.timeoutMs, rec);
  }

  readonly #onTimeout = (rec: Rec): void => {
    rec.timer = undefined;
    if (rec.state !== RUNNING || rec.slot === undefined) return;
    rec.pendingError = poolErrorData(
      "POOL_TIMEOUT",
      `job ${rec.id} (${describe(rec.fn)}) timed out after ${rec.timeoutMs} ms ` +
        `(attempt ${rec.attempt})`,
    );
    this.#abortInWorker(
      rec,
      new DOMException(`the job timed out after ${rec.timeoutMs} ms`, "TimeoutError"),
    );
    this.#armKill(rec);
  };

  readonly #onDeadline = (rec: Rec): void => {
    rec.deadlineTimer = undefined;
    if (rec.state === DONE) return;
    const inWorker = rec.slot !== undefined;
    if (rec.state === QUEUED) this.#queued--;
    if (inWorker) {
      this.#abortInWorker(
        rec,
        new DOMException("the job's deadline passed", "TimeoutError"),
      );
    }
    if (rec.state === RUNNING) this.#armKill(rec);
    this.#settle(rec, "failed", undefined, this.#deadlineError(rec));
  };

  #onAbort(rec: Rec): void {
    if (rec.state === DONE) return;
    const reason = rec.signal!.reason;
    if (rec.state === QUEUED) this.#queued--;
    if (rec.slot !== undefined) this.#abortInWorker(rec, reason);
    if (rec.state === RUNNING) this.#armKill(rec);
    this.#settle(rec, "cancelled", undefined, toErrorData(reason), reason);
  }

  #abortInWorker(rec: Rec, reason: unknown): void {
    const worker = rec.slot!.worker;
    try {
      worker.postMessage([TO_WORKER_CANCEL, rec.id, reason]);
    } catch {
      // A reason that cannot be cloned reaches the job as plain error data.
      worker.postMessage([TO_WORKER_CANCEL, rec.id, toErrorData(reason)]);
    }
  }

  #armKill(rec: Rec): void {
    if (rec.killTimer === undefined) {
      rec.killTimer = setTimeout(this.#onKill, this.#killGraceMs, rec);
    }
  }

  #clearKill(rec: Rec): void {
    if (rec.killTimer !== undefined) {
      clearTimeout(rec.killTimer);
      rec.killTimer = undefined;
    }
  }

  readonly #onKill = (rec: Rec): void => {
    rec.killTimer = undefined;
    const slot = rec.slot;
    if (slot === undefined || slot.dead) return;
    log.warning(
      "job {id} ({fn}) did not stop within {graceMs} ms after its signal aborted; " +
        "terminating worker {worker}",
      { id: rec.id, fn: describe(rec.fn), graceMs: this.#killGraceMs, worker: slot.name },
    );
    this.#killSlot(slot, undefined, "killed");
  };

  /**
   * Terminates a worker. Its oldest unfinished job is the culprit: it fails (with its pending
   * timeout, or the crash) and may be retried; the jobs behind it never started and go back to
   * the front of the queue without counting an attempt.
   */
  #killSlot(slot: Slot, crash: ErrorData | undefined, why: string): void {
    if (slot.dead) return;
    slot.dead = true;
    slot.worker.terminate();
    this.#slots = this.#slots.filter((s) => s !== slot);
    if (this.#state === "stopped") return;
    this.#replaced++;
    const recs = slot.inflight.drain();
    const culprit = recs[0];
    if (crash !== undefined) {
      log.warning("worker {worker} {why} while running job {id} ({fn}): {message}", {
        worker: slot.name,
        why: why === "crash" ? "crashed" : why === "exit" ? "exited" : `failed (${why})`,
        id: culprit?.id,
        fn: culprit ? describe(culprit.fn) : undefined,
        message: crash.message,
      });
    }
    const now = performance.now();
    const requeue: Rec[] = [];
    for (let i = 0; i < recs.length; i++) {
      const rec = recs[i]!;
      this.#clearKill(rec);
      rec.slot = undefined;
      if (rec.state === DONE) continue;
      if (i === 0) {
        if (rec.timer !== undefined) {
          clearTimeout(rec.timer);
          rec.timer = undefined;
        }
        if (rec.state === RUNNING) rec.runMs += now - rec.startedAt;
        const error = rec.pendingError ?? crash ?? poolErrorData(
          "POOL_WORKER_CRASHED",
          `the worker of job ${rec.id} was terminated`,
        );
        rec.pendingError = undefined;
        this.#failAttempt(rec, error);
      } else {
        rec.attempt--;
        rec.state = QUEUED;
        requeue.push(rec);
      }
    }
    for (let i = requeue.length - 1; i >= 0; i--) this.#queue.unshift(requeue[i]!);
    this.#queued += requeue.length;
    if (this.#queued > 0) this.#pump();
  }

  #failAttempt(rec: Rec, error: ErrorData): void {
    const retry = error.noRetry !== true && rec.attempt <= rec.maxRetries &&
      rec.transfer === undefined && (this.#state === "running" || this.#state === "stopping");
    if (!retry) {
      this.#settle(rec, "failed", undefined, error);
      return;
    }
    rec.state = BACKOFF;
    this.#retried++;
    const delay = Math.min(
      this.#maxRetryDelayMs,
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

  readonly #retry = (rec: Rec): void => {
    rec.timer = undefined;
    if (rec.state !== BACKOFF) return;
    this.#backoff.delete(rec);
    rec.state = QUEUED;
    this.#queue.unshift(rec);
    this.#queued++;
    this.#pump();
  };

  #settle(
    rec: Rec,
    status: JobStatus,
    value: unknown,
    error: ErrorData | undefined,
    reason?: unknown,
  ): void {
    if (rec.state === BACKOFF) this.#backoff.delete(rec);
    rec.state = DONE;
    if (rec.timer !== undefined) {
      clearTimeout(rec.timer);
      rec.timer = undefined;
    }
    if (rec.deadlineTimer !== undefined) {
      clearTimeout(rec.deadlineTimer);
      rec.deadlineTimer = undefined;
    }
    if (rec.onAbort !== undefined) {
      rec.signal!.removeEventListener("abort", rec.onAbort);
      rec.onAbort = undefined;
    }
    this.#pending--;
    if (status === "succeeded") this.#succeeded++;
    else if (status === "failed") this.#failed++;
    else this.#cancelled++;
    this.#attempts += rec.attempt;
    const runMs = rec.runMs;
    const waitMs = Math.max(0, performance.now() - rec.submittedAt - runMs - rec.backoffMs);
    this.#wait.add(waitMs);
    this.#run.add(runMs);
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
  }
}

/** The error `run()` throws for a result that is not `succeeded`. */
function resultToError(result: JobResult<unknown>, job: Job<unknown>): unknown {
  const error = result.error ?? { name: "Error", message: "unknown failure" };
  const byPool = error.name === "PoolError" &&
    (error.code === "POOL_SHUTDOWN" || error.code === "POOL_TERMINATED");
  if (result.status === "cancelled" && result.reason !== undefined) {
    if (!byPool || result.reason instanceof PoolError) return result.reason;
  }
  const url = typeof job.module === "string" ? job.module : job.module.href;
  const where = `${job.fn ?? "default"} of ${url}`;
  const known: readonly string[] = [
    "POOL_TIMEOUT",
    "POOL_DEADLINE",
    "POOL_WORKER_CRASHED",
    "POOL_JOB_INVALID",
    "POOL_SHUTDOWN",
    "POOL_TERMINATED",
  ];
  const details = {
    jobId: result.id,
    module: url,
    fn: job.fn ?? "default",
    attempts: result.attempts,
  };
  if (error.name === "PoolError" && error.code !== undefined && known.includes(error.code)) {
    return new PoolError(error.code as PoolErrorCode, error.message, {
      cause: byPool
        ? result.reason
        : error.cause === undefined
        ? undefined
        : jobErrorToError(error.cause),
      details,
    });
  }
  return new PoolError(
    "POOL_JOB_FAILED",
    `job ${where} failed after ${result.attempts} attempt(s): ${error.name}: ${error.message}`,
    { cause: jobErrorToError(error), details },
  );
}
