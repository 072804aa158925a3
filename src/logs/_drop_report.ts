import type { Logger } from "@logtape/logtape";

/**
 * When and how the sink says it dropped records: not at once (a full queue drops many in a
 * row), but once the pressure passed (the sink calls {@link DropReport.report}) or, while it
 * lasts, at most every `intervalMs` by timer (`onDue`). Private to `src/logs/`.
 */
export class DropReport {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #path: string;
  readonly #queueSize: number;
  readonly #onDue: () => void;
  /** When the first drop since the last report happened. */
  #since = 0;
  #lastReport = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param options `intervalMs` (0: no timer), and `path` and `queueSize` for the message
   * @param onDue called by the timer: the sink reports what it counted since
   */
  constructor(
    log: Logger,
    options: { intervalMs: number; path: string; queueSize: number },
    onDue: () => void,
  ) {
    this.#log = log;
    this.#intervalMs = options.intervalMs;
    this.#path = options.path;
    this.#queueSize = options.queueSize;
    this.#onDue = onDue;
  }

  /** The first drop since the last report: a report is due by timer unless one comes first. */
  start(): void {
    this.#since = Date.now();
    if (this.#timer === undefined && this.#intervalMs > 0) {
      const wait = Math.max(0, this.#lastReport + this.#intervalMs - this.#since);
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#onDue();
      }, Math.max(wait, Math.min(1_000, this.#intervalMs)));
    }
  }

  /**
   * Logs `count` drops (none: nothing), `total` in all; `ongoing` (the queue is still more
   * than half full) starts the next period at once.
   */
  report(count: number, total: number, ongoing: boolean): void {
    this.stop();
    if (count === 0) return;
    this.#lastReport = Date.now();
    this.#log.warning(
      "log store queue was full: dropped {dropped} records in {seconds} s " +
        "(queue_size {queueSize}; {total} dropped in all)",
      {
        dropped: count,
        seconds: Math.max(0, Math.round((this.#lastReport - this.#since) / 100) / 10),
        queueSize: this.#queueSize,
        total,
        ongoing,
        path: this.#path,
      },
    );
    if (ongoing) this.start(); // still full: the next report comes by timer
  }

  /** Clears the timer. */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
