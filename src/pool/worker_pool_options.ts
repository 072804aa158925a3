import type { Config } from "../config/mod.ts";
import { checkCount, checkMs } from "./_check.ts";
import type { JobDefaults } from "./_job_record.ts";

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

/** {@linkcode WorkerPoolOptions} checked, with every default filled in. */
export interface ResolvedOptions {
  readonly maxWorkers: number;
  readonly queueLimit: number;
  readonly killGraceMs: number;
  readonly maxRetryDelayMs: number;
  readonly name: string;
  /** What a job that leaves a field out gets (`timeoutMs` 0: none). */
  readonly jobDefaults: JobDefaults;
}

/**
 * Checks the options and fills in the defaults.
 *
 * @throws {RangeError} for an option out of range
 */
export function resolveOptions(options: WorkerPoolOptions): ResolvedOptions {
  checkCount("maxWorkers", options.maxWorkers, 1);
  checkCount("queueLimit", options.queueLimit, 0);
  checkMs("timeoutMs", options.timeoutMs, 1);
  checkCount("maxRetries", options.maxRetries, 0);
  checkMs("retryDelayMs", options.retryDelayMs, 0);
  checkMs("retryMultiplier", options.retryMultiplier, 1, 1000);
  checkMs("maxRetryDelayMs", options.maxRetryDelayMs, 0);
  checkMs("killGraceMs", options.killGraceMs, 0);
  return {
    maxWorkers: options.maxWorkers ?? Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4)),
    queueLimit: options.queueLimit ?? 1000,
    killGraceMs: options.killGraceMs ?? 1000,
    maxRetryDelayMs: options.maxRetryDelayMs ?? 30_000,
    name: options.name ?? "plugsconc-pool",
    jobDefaults: {
      timeoutMs: options.timeoutMs ?? 0,
      maxRetries: options.maxRetries ?? 0,
      retryDelayMs: options.retryDelayMs ?? 100,
      retryMultiplier: options.retryMultiplier ?? 2,
    },
  };
}
