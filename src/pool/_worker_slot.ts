/**
 * One worker as the pool sees it: the jobs sent to it in the order it runs them, the
 * messages to it (batches of jobs, cancels) and from it (results, crashes).
 *
 * @module
 */
import { Deque } from "./_deque.ts";
import { describe, learn } from "./_fn_keys.ts";
import { deadlineError } from "./_guards.ts";
import type { JobQueue } from "./_job_queue.ts";
import { type JobRecord, SENT } from "./_job_record.ts";
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
import { poolErrorData } from "./job_error.ts";

/** Loaded by URL: `scripts/compile.ts` must `--include` it. */
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

/** Whether a worker holding `count` jobs (estimated `backlogMs`) may get one more. */
export function hasRoom(count: number, backlogMs: number, estMs: number): boolean {
  if (count === 0) return true;
  if (count >= MAX_IN_FLIGHT) return false;
  const total = backlogMs + estMs;
  return total <= WINDOW_MS || (count === 1 && total <= PREFETCH_MS);
}

/** What a worker's messages mean to the rest of the pool. */
export interface SlotEvents {
  /** An attempt ended in the worker (returned, threw, or was skipped). */
  conclude(rec: JobRecord, status: number, payload: unknown, runMs: number): void;
  /** A guarded job started. */
  started(rec: JobRecord): void;
  /** The worker crashed or cannot be trusted any more: terminate it. */
  lost(slot: WorkerSlot, crash: ErrorData | undefined, why: string): void;
  /** Results came back: the worker has room for more. */
  ready(): void;
  /** A job could not be sent (deadline passed, input not cloneable): it failed. */
  reject(rec: JobRecord, error: ErrorData): void;
}

/** One worker and the jobs sent to it, in the order it runs them. */
export class WorkerSlot {
  readonly worker: Worker;
  readonly name: string;
  readonly inflight = new Deque<JobRecord>();
  backlogMs = 0;
  dead = false;
  /** Keys of the functions this worker was told about. */
  readonly #known = new Set<number>();
  readonly #events: SlotEvents;

  /** Starts the worker. */
  constructor(name: string, events: SlotEvents) {
    const worker = new Worker(WORKER_URL, { type: "module", name });
    this.worker = worker;
    this.name = name;
    this.#events = events;
    worker.onmessage = (event: MessageEvent<unknown[]>) => this.#onMessage(event.data);
    worker.onerror = (event: ErrorEvent) => {
      // The worker's own handlers report uncaught errors; this is what escapes them (an error
      // loading the worker itself). preventDefault keeps it from ending the host.
      event.preventDefault();
      events.lost(this, {
        name: "Error",
        message: event.message,
        stack: `${event.message}\n    at ${event.filename}:${event.lineno}:${event.colno}`,
      }, "error event");
    };
    worker.onmessageerror = () => {
      events.lost(this, {
        name: "DataCloneError",
        message: "a message from the worker could not be deserialized",
      }, "message error");
    };
  }

  /** Terminates the worker; its jobs stay in {@linkcode WorkerSlot.inflight}. */
  terminate(): void {
    this.dead = true;
    this.worker.terminate();
  }

  /** Asks the worker to abort a job (its signal aborts with `reason`). */
  cancel(id: number, reason: unknown): void {
    try {
      this.worker.postMessage([TO_WORKER_CANCEL, id, reason]);
    } catch {
      // A reason that cannot be cloned reaches the job as plain error data.
      this.worker.postMessage([TO_WORKER_CANCEL, id, toErrorData(reason)]);
    }
  }

  /** Sends the worker as many queued jobs as it has room for, in one message. */
  fill(queue: JobQueue): void {
    const message: unknown[] = [TO_WORKER_RUN];
    const batch: JobRecord[] = [];
    let transfer: Transferable[] | undefined;
    let backlog = this.backlogMs;
    let count = this.inflight.size;
    const worker = this.worker;
    for (;;) {
      const rec = queue.peek();
      if (rec === undefined) break;
      const est = rec.fn.estMs;
      if (count > 0 && !hasRoom(count, backlog, est)) break;
      queue.take();
      if (rec.deadline !== 0 && rec.deadlineTimer === undefined && Date.now() >= rec.deadline) {
        this.#events.reject(rec, deadlineError(rec));
        continue;
      }
      const key = rec.fn.key;
      if (!this.#known.has(key)) {
        worker.postMessage([TO_WORKER_DEFINE, key, rec.fn.url, rec.fn.name]);
        this.#known.add(key);
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
      this.#sendOneByOne(batch);
      return;
    }
    this.backlogMs = backlog;
    for (const rec of batch) {
      rec.state = SENT;
      rec.slot = this;
      rec.attempt++;
      this.inflight.push(rec);
    }
  }

  /** The batch could not be cloned: send each job alone, failing only the bad ones. */
  #sendOneByOne(batch: readonly JobRecord[]): void {
    for (const rec of batch) {
      try {
        this.worker.postMessage(
          [TO_WORKER_RUN, rec.id, rec.fn.key, rec.input, rec.guarded ? 1 : 0, rec.attempt + 1],
          rec.transfer === undefined ? undefined : { transfer: rec.transfer },
        );
      } catch (error) {
        this.#events.reject(rec, {
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
      rec.slot = this;
      rec.attempt++;
      this.backlogMs += rec.est;
      this.inflight.push(rec);
    }
  }

  #onMessage(m: unknown[]): void {
    if (this.dead) return;
    switch (m[0]) {
      case FROM_WORKER_RESULTS:
        this.#onResults(m);
        break;
      case FROM_WORKER_CRASH: {
        const data = m[1] as ErrorData;
        this.#events.lost(
          this,
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
        this.#events.lost(
          this,
          poolErrorData(
            "POOL_WORKER_CRASHED",
            `the worker exited: the job called ${String(m[1])}; jobs must return instead`,
          ),
          "exit",
        );
        break;
    }
  }

  #onResults(m: unknown[]): void {
    const events = this.#events;
    const n = m.length;
    for (let i = 2; i < n; i += RESULT_FIELDS) {
      const rec = this.inflight.shift();
      if (rec === undefined || rec.id !== m[i]) {
        // Cannot happen unless a message was lost; the worker's state is unknown.
        if (rec !== undefined) this.inflight.unshift(rec);
        events.lost(
          this,
          poolErrorData("POOL_WORKER_CRASHED", `worker protocol error: unexpected result`),
          "protocol error",
        );
        return;
      }
      this.backlogMs -= rec.est;
      const status = m[i + 1] as number;
      const runMs = m[i + 3] as number;
      if (status === STATUS_OK || status === STATUS_ERROR) learn(rec.fn, runMs);
      events.conclude(rec, status, m[i + 2], runMs);
    }
    if (this.inflight.size === 0) this.backlogMs = 0;
    const started = m[1] as number;
    if (started !== -1) {
      const rec = this.inflight.peek();
      if (rec !== undefined && rec.id === started) events.started(rec);
    }
    events.ready();
  }
}
