import { Deque } from "./_deque.ts";
import { type JobRecord, QUEUED } from "./_job_record.ts";

/**
 * The pool's queue: jobs waiting for a worker, oldest first (retries and jobs sent back by a
 * lost worker go to the front). A queued job that settles (cancelled, deadline passed) stays
 * where it is, as removing it from the middle would cost O(n), and is dropped when it reaches
 * the front; {@linkcode JobQueue.size} counts only the jobs still waiting.
 */
export class JobQueue {
  readonly #jobs = new Deque<JobRecord>();
  #size = 0;

  /** Jobs waiting (the `queueDepth` metric). */
  get size(): number {
    return this.#size;
  }

  /** Appends a new job. */
  push(rec: JobRecord): void {
    this.#jobs.push(rec);
    this.#size++;
  }

  /** Puts a job at the front (a retry). */
  unshift(rec: JobRecord): void {
    this.#jobs.unshift(rec);
    this.#size++;
  }

  /** Puts jobs back at the front, in their order. */
  requeue(recs: readonly JobRecord[]): void {
    for (let i = recs.length - 1; i >= 0; i--) this.#jobs.unshift(recs[i]!);
    this.#size += recs.length;
  }

  /** A queued job settled where it stands: it no longer counts. */
  forget(): void {
    this.#size--;
  }

  /** The oldest waiting job, left in place (see {@linkcode JobQueue.take}). */
  peek(): JobRecord | undefined {
    let rec = this.#jobs.peek();
    while (rec !== undefined && rec.state !== QUEUED) {
      this.#jobs.shift();
      rec = this.#jobs.peek();
    }
    return rec;
  }

  /** Removes the job {@linkcode JobQueue.peek} returned. */
  take(): void {
    this.#jobs.shift();
    this.#size--;
  }

  /** Empties the queue; returns what it held, settled jobs included (check `state`). */
  drain(): JobRecord[] {
    this.#size = 0;
    return this.#jobs.drain();
  }
}
