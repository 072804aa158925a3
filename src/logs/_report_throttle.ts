/**
 * Sums counts and reports them: the first at once, later ones at most once per `intervalMs`
 * (by timer). A report that is itself a log record of a failing sink must not feed itself.
 * Private to `src/logs/`.
 */
export class ReportThrottle<T> {
  readonly #intervalMs: number;
  readonly #report: (count: number, last: T) => void;
  #count = 0;
  #last: T | undefined;
  #at = -Infinity;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /** @param report called with the sum since the last report and the last detail noted */
  constructor(intervalMs: number, report: (count: number, last: T) => void) {
    this.#intervalMs = intervalMs;
    this.#report = report;
  }

  /** Adds `count` with its detail; reports now or schedules the report. */
  note(count: number, detail: T): void {
    this.#count += count;
    this.#last = detail;
    const wait = this.#at + this.#intervalMs - Date.now();
    if (wait <= 0) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), wait);
  }

  /** Reports what is pending now, if anything; clears the timer. */
  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#count === 0 || this.#last === undefined) return;
    const count = this.#count;
    this.#count = 0;
    this.#at = Date.now();
    this.#report(count, this.#last);
  }
}
