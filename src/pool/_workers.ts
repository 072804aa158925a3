/**
 * The pool's workers: started on demand up to `maxWorkers`, picked for each batch of jobs,
 * terminated and forgotten when lost (the next dispatch starts a replacement).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Attempts } from "./_attempts.ts";
import { describe } from "./_fn_keys.ts";
import type { Guards } from "./_guards.ts";
import type { JobQueue } from "./_job_queue.ts";
import { DONE, type JobRecord, QUEUED, RUNNING, type Settle } from "./_job_record.ts";
import type { PoolCounters } from "./_pool_counters.ts";
import { type ErrorData, STATUS_ERROR } from "./_protocol.ts";
import { hasRoom, type SlotEvents, WorkerSlot } from "./_worker_slot.ts";
import { poolErrorData } from "./job_error.ts";

const log = getLogger(["plugsconc", "pool"]);

/** What {@linkcode Workers} needs of the pool. */
export interface WorkersDeps {
  readonly maxWorkers: number;
  /** Prefix of the workers' names. */
  readonly name: string;
  readonly queue: JobQueue;
  readonly counters: PoolCounters;
  readonly guards: Guards;
  readonly attempts: Attempts;
  readonly settle: Settle;
  /** Whether the pool has stopped (a worker lost then has nothing to recover). */
  stopped(): boolean;
  /** Dispatches queued jobs. */
  readonly pump: () => void;
}

/** The live workers. */
export class Workers {
  readonly #deps: WorkersDeps;
  readonly #events: SlotEvents;
  #slots: WorkerSlot[] = [];
  #spawned = 0;

  constructor(deps: WorkersDeps) {
    this.#deps = deps;
    const { attempts, guards, queue, settle, pump } = deps;
    this.#events = {
      conclude: (rec, status, payload, runMs) => attempts.conclude(rec, status, payload, runMs),
      started: (rec) => guards.started(rec),
      lost: (slot, crash, why) => this.kill(slot, crash, why),
      ready: () => {
        if (queue.size > 0) pump();
      },
      reject: (rec, error) => settle(rec, "failed", undefined, error),
    };
  }

  /** Workers alive now. */
  get size(): number {
    return this.#slots.length;
  }

  /** Jobs sent to a worker and not finished. */
  get running(): number {
    let running = 0;
    for (const slot of this.#slots) running += slot.inflight.size;
    return running;
  }

  /** An idle worker, else a new one, else the least loaded one with room. */
  pick(estMs: number): WorkerSlot | undefined {
    let best: WorkerSlot | undefined;
    for (const slot of this.#slots) {
      if (slot.inflight.size === 0) return slot;
      if (
        hasRoom(slot.inflight.size, slot.backlogMs, estMs) &&
        (best === undefined || slot.backlogMs < best.backlogMs)
      ) best = slot;
    }
    if (this.#slots.length < this.#deps.maxWorkers) return this.#spawn();
    return best;
  }

  #spawn(): WorkerSlot {
    const name = `${this.#deps.name}-${++this.#spawned}`;
    const slot = new WorkerSlot(name, this.#events);
    this.#slots.push(slot);
    log.debug("worker {worker} started", { worker: name });
    return slot;
  }

  /**
   * Terminates a worker. Its oldest unfinished job is the culprit: it fails (with its pending
   * timeout, or the crash) and may be retried; the jobs behind it never started and go back to
   * the front of the queue without counting an attempt.
   */
  kill(slot: WorkerSlot, crash: ErrorData | undefined, why: string): void {
    if (slot.dead) return;
    slot.terminate();
    this.#slots = this.#slots.filter((s) => s !== slot);
    const deps = this.#deps;
    if (deps.stopped()) return;
    deps.counters.replaced++;
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
    if (culprit !== undefined) {
      deps.attempts.conclude(
        culprit,
        STATUS_ERROR,
        crash ?? poolErrorData(
          "POOL_WORKER_CRASHED",
          `the worker of job ${culprit.id} was terminated`,
        ),
        culprit.state === RUNNING ? performance.now() - culprit.startedAt : 0,
      );
    }
    const requeue: JobRecord[] = [];
    for (let i = 1; i < recs.length; i++) {
      const rec = recs[i]!;
      deps.guards.clearKill(rec);
      rec.slot = undefined;
      if (rec.state === DONE) continue;
      rec.attempt--;
      rec.state = QUEUED;
      requeue.push(rec);
    }
    deps.queue.requeue(requeue);
    if (deps.queue.size > 0) deps.pump();
  }

  /** Terminates every worker now; `each` gets their unfinished jobs, oldest first. */
  terminateAll(each: (rec: JobRecord) => void): void {
    const slots = this.#slots;
    this.#slots = [];
    for (const slot of slots) {
      slot.terminate();
      for (const rec of slot.inflight.drain()) each(rec);
    }
  }
}
