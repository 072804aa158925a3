import type { MetricSnapshot, MetricsRegistry } from "../../metrics/mod.ts";

/** One plugin's calls over one sampling interval. */
export interface MetricSample {
  /** End of the interval, ms since the epoch. */
  readonly t: number;
  readonly callsPerSec: number;
  /** Failed calls / calls in the interval (0 without calls). */
  readonly errorRate: number;
  /** Latency percentiles in ms (upper bucket bounds), null without calls. */
  readonly p50: number | null;
  readonly p99: number | null;
}

interface Totals {
  calls: number;
  failures: number;
  /** Cumulative histogram counts by bucket bound, summed over the plugin's methods. */
  buckets: Map<number, number>;
}

/** Options for {@link MetricHistory}. */
export interface MetricHistoryOptions {
  /** Sampling interval. Default: 2000 ms. */
  readonly intervalMs?: number;
  /** Samples kept per plugin. Default: 150 (5 minutes at 2 s). */
  readonly keep?: number;
}

/**
 * Calls/s, error rate and p50/p99 per plugin over the last minutes, sampled from the host's
 * metrics registry (the pipeline's counters and latency histogram): the dashboard's chart.
 * Sampling runs only while someone watches ({@link MetricHistory.start} / `stop`); the
 * timer never keeps the process alive.
 */
export class MetricHistory implements Disposable {
  readonly #registry: Pick<MetricsRegistry, "snapshot">;
  readonly #intervalMs: number;
  readonly #keep: number;
  readonly #samples = new Map<string, MetricSample[]>();
  #last: Map<string, Totals> | undefined;
  #lastT = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #users = 0;

  constructor(registry: Pick<MetricsRegistry, "snapshot">, options: MetricHistoryOptions = {}) {
    this.#registry = registry;
    this.#intervalMs = options.intervalMs ?? 2000;
    this.#keep = options.keep ?? 150;
    if (!(this.#intervalMs > 0)) {
      throw new RangeError(`intervalMs must be > 0, got ${this.#intervalMs}`);
    }
    if (!(Number.isInteger(this.#keep) && this.#keep > 0)) {
      throw new RangeError(`keep must be a positive integer, got ${this.#keep}`);
    }
  }

  /** The sampling interval in ms. */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Counts one watcher; the first starts sampling. Call the returned function when done. */
  start(): () => void {
    if (this.#users++ === 0) {
      this.sample();
      this.#timer = setInterval(() => this.sample(), this.#intervalMs);
      Deno.unrefTimer(this.#timer);
    }
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.#users === 0) this[Symbol.dispose]();
    };
  }

  /** Takes one sample now (the first only sets the baseline). */
  sample(now: number = Date.now()): void {
    const totals = totalsOf(this.#registry.snapshot());
    const last = this.#last;
    const seconds = (now - this.#lastT) / 1000;
    if (last !== undefined && seconds > 0) {
      for (const [plugin, cur] of totals) {
        const prev = last.get(plugin) ?? { calls: 0, failures: 0, buckets: new Map() };
        const calls = Math.max(0, cur.calls - prev.calls);
        const failures = Math.max(0, cur.failures - prev.failures);
        const deltas = [...cur.buckets].map(([le, n]) =>
          [le, n - (prev.buckets.get(le) ?? 0)] as const
        )
          .sort((a, b) => a[0] - b[0]);
        const list = this.#samples.get(plugin) ?? [];
        list.push({
          t: now,
          callsPerSec: calls / seconds,
          errorRate: calls === 0 ? 0 : Math.min(1, failures / calls),
          p50: quantile(deltas, 0.5),
          p99: quantile(deltas, 0.99),
        });
        if (list.length > this.#keep) list.splice(0, list.length - this.#keep);
        this.#samples.set(plugin, list);
      }
    }
    this.#last = totals;
    this.#lastT = now;
  }

  /** The samples of every plugin, oldest first. */
  samples(): Record<string, readonly MetricSample[]> {
    return Object.fromEntries(this.#samples);
  }

  /** Stops sampling. */
  [Symbol.dispose](): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

function totalsOf(metrics: readonly MetricSnapshot[]): Map<string, Totals> {
  const out = new Map<string, Totals>();
  const of = (p: string) => {
    let t = out.get(p);
    if (t === undefined) out.set(p, t = { calls: 0, failures: 0, buckets: new Map() });
    return t;
  };
  for (const m of metrics) {
    for (const s of m.series) {
      const plugin = s.labels.plugin;
      if (plugin === undefined) continue;
      if (m.name === "plugsconc_calls_total") of(plugin).calls += s.value;
      else if (m.name === "plugsconc_call_failures_total") of(plugin).failures += s.value;
      else if (m.name === "plugsconc_call_duration_seconds" && s.buckets !== undefined) {
        const b = of(plugin).buckets;
        for (const { le, count } of s.buckets) b.set(le, (b.get(le) ?? 0) + count);
      }
    }
  }
  return out;
}

/** The upper bound (ms) of the bucket holding quantile `q` of cumulative `buckets`. */
function quantile(buckets: readonly (readonly [number, number])[], q: number): number | null {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) return null;
  let finite = 0;
  for (const [le, n] of buckets) {
    if (Number.isFinite(le)) finite = le;
    if (n >= q * total) return (Number.isFinite(le) ? le : finite) * 1000;
  }
  return finite * 1000;
}
