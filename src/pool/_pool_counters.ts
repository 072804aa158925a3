import type { DurationSummary, JobStatus, PoolMetrics, PoolState } from "./types.ts";

/** Running totals of one duration. */
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

/** The parts of {@linkcode PoolMetrics} that are the pool's state now, not counters. */
export interface PoolGauges {
  readonly state: PoolState;
  readonly pending: number;
  readonly queueDepth: number;
  readonly running: number;
  readonly workers: number;
  readonly maxWorkers: number;
}

/** The counters behind {@linkcode PoolMetrics}; the pool and its helpers count into them. */
export class PoolCounters {
  /** When the pool was created (epoch ms). */
  readonly startedAt: number = Date.now();
  /** When it finished stopping (epoch ms). */
  stoppedAt: number | undefined;
  submitted = 0;
  rejected = 0;
  succeeded = 0;
  failed = 0;
  cancelled = 0;
  retried = 0;
  replaced = 0;
  attempts = 0;
  readonly #wait = new Summary();
  readonly #run = new Summary();

  /** Counts a job that settled. */
  settled(status: JobStatus, attempts: number, waitMs: number, runMs: number): void {
    if (status === "succeeded") this.succeeded++;
    else if (status === "failed") this.failed++;
    else this.cancelled++;
    this.attempts += attempts;
    this.#wait.add(waitMs);
    this.#run.add(runMs);
  }

  /** The metrics: these counters and the given gauges. */
  view(gauges: PoolGauges): PoolMetrics {
    return {
      state: gauges.state,
      submitted: this.submitted,
      rejected: this.rejected,
      succeeded: this.succeeded,
      failed: this.failed,
      cancelled: this.cancelled,
      retried: this.retried,
      pending: gauges.pending,
      queueDepth: gauges.queueDepth,
      running: gauges.running,
      workers: gauges.workers,
      maxWorkers: gauges.maxWorkers,
      workersReplaced: this.replaced,
      attempts: this.attempts,
      waitMs: this.#wait.view(),
      runMs: this.#run.view(),
      startedAt: this.startedAt,
      stoppedAt: this.stoppedAt,
    };
  }
}
