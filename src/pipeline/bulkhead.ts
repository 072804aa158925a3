/**
 * At most `maxInFlight` calls at once, up to `queue` more waiting in order; beyond that a call
 * is refused. A waiting call whose signal aborts leaves the queue at once, freeing its place.
 *
 * Ours rather than cockatiel's `BulkheadPolicy`: that one keeps an aborted call in its queue
 * until a slot frees, so calls that timed out while waiting fill the queue (and hold their
 * params) and live calls are refused as if it were full.
 *
 * @example
 * ```ts
 * const b = new Bulkhead(2, 10);
 * if (!b.tryAcquire() && !(await b.acquire(signal))) throw new Error("full");
 * try { await work(); } finally { b.release(); }
 * ```
 */
export class Bulkhead {
  readonly maxInFlight: number;
  readonly queue: number;
  #active = 0;
  readonly #waiting: { grant: () => void; signal?: AbortSignal }[] = [];

  /**
   * @param maxInFlight concurrent calls (>= 1)
   * @param queue calls that may wait (>= 0)
   */
  constructor(maxInFlight: number, queue: number) {
    if (!(Number.isInteger(maxInFlight) && maxInFlight >= 1)) {
      throw new RangeError(`maxInFlight must be an integer >= 1, got ${maxInFlight}`);
    }
    if (!(Number.isInteger(queue) && queue >= 0)) {
      throw new RangeError(`queue must be an integer >= 0, got ${queue}`);
    }
    this.maxInFlight = maxInFlight;
    this.queue = queue;
  }

  /** Calls running. */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Takes a slot if one is free (no waiting, no promise). */
  tryAcquire(): boolean {
    if (this.#active >= this.maxInFlight) return false;
    this.#active++;
    return true;
  }

  /**
   * Waits for a slot. Resolves `true` with the slot taken, `false` when the queue is full;
   * rejects with the signal's reason when it aborts first.
   */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (this.tryAcquire()) return Promise.resolve(true);
    if (this.#waiting.length >= this.queue) return Promise.resolve(false);
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<boolean>((resolve, reject) => {
      const entry = {
        signal,
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(true);
        },
      };
      const onAbort = () => {
        const i = this.#waiting.indexOf(entry);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(entry);
    });
  }

  /** Gives a slot back: the longest-waiting call gets it. */
  release(): void {
    const next = this.#waiting.shift();
    if (next !== undefined) {
      next.grant(); // the slot passes on: `active` stays the same
      return;
    }
    if (this.#active > 0) this.#active--;
  }
}
