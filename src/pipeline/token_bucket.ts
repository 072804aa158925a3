/**
 * A token bucket: `burst` tokens, refilled at `rps` per second. cockatiel has no rate limiter,
 * so this is ours.
 *
 * @example
 * ```ts
 * const bucket = new TokenBucket(100, 20);
 * if (!bucket.take()) console.log(`retry in ${bucket.retryAfterMs()} ms`);
 * ```
 */
export class TokenBucket {
  readonly rps: number;
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  /**
   * @param rps tokens per second (> 0)
   * @param burst bucket size (>= 1)
   * @param now clock in ms (tests pass a fake one). Default `performance.now`.
   */
  constructor(rps: number, burst: number, now: () => number = () => performance.now()) {
    if (!(rps > 0 && Number.isFinite(rps))) throw new RangeError(`rps must be > 0, got ${rps}`);
    if (!(burst >= 1 && Number.isFinite(burst))) {
      throw new RangeError(`burst must be >= 1, got ${burst}`);
    }
    this.rps = rps;
    this.burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#at = now();
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.rps) / 1000);
    this.#at = now;
  }

  /** Takes one token if there is one. */
  take(): boolean {
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** Milliseconds until one token is available (0 if one is). */
  retryAfterMs(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : ((1 - this.#tokens) * 1000) / this.rps;
  }
}
