/** Label values of one series, in the order of the metric's label names. */
export type LabelValues = readonly string[];

/** One series of a metric, as {@link MetricsRegistry.snapshot} reports it. */
export interface SeriesSnapshot {
  readonly labels: Readonly<Record<string, string>>;
  /** Counter or gauge value; for a histogram, the sum of observations. */
  readonly value: number;
  /** Histogram only: observations. */
  readonly count?: number;
  /** Histogram only: cumulative counts per upper bound (`le`), `+Inf` last. */
  readonly buckets?: readonly { readonly le: number; readonly count: number }[];
}

/** One metric with all its series. */
export interface MetricSnapshot {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "gauge" | "histogram";
  readonly series: readonly SeriesSnapshot[];
}

/** Default latency buckets in seconds: 50 us to 10 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.00005,
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

abstract class Metric<S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  protected readonly series = new Map<string, { values: LabelValues; state: S }>();

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!NAME.test(name)) throw new RangeError(`invalid metric name ${JSON.stringify(name)}`);
    for (const l of labelNames) {
      if (!LABEL.test(l) || l === "le") {
        throw new RangeError(`invalid label name ${JSON.stringify(l)} of ${name}`);
      }
    }
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected abstract initial(): S;

  /** The state of one series, created on first use. */
  protected state(values: LabelValues): S {
    if (values.length !== this.labelNames.length) {
      throw new RangeError(
        `${this.name} takes ${this.labelNames.length} label values (${this.labelNames}), got ${values.length}`,
      );
    }
    const key = values.length === 1 ? values[0]! : values.join("\u0000");
    let s = this.series.get(key);
    if (s === undefined) {
      s = { values: [...values], state: this.initial() };
      this.series.set(key, s);
    }
    return s.state;
  }

  protected labelsOf(values: LabelValues): Record<string, string> {
    return Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]!]));
  }

  /** Forgets every series whose label values start with `prefix` (a plugin that went away). */
  remove(prefix: LabelValues): void {
    for (const [key, s] of this.series) {
      if (prefix.every((v, i) => s.values[i] === v)) this.series.delete(key);
    }
  }
}

/** A value that only goes up. Bind label values once with {@link Counter.labels} on hot paths. */
export class Counter extends Metric<{ v: number }> {
  protected initial(): { v: number } {
    return { v: 0 };
  }

  /** A handle on one series: `inc()` without a map look-up. */
  labels(...values: string[]): { inc(by?: number): void; get(): number } {
    const s = this.state(values);
    return { inc: (by = 1) => void (s.v += by), get: () => s.v };
  }

  /** Adds `by` (default 1) to the series of `values`. */
  inc(values: LabelValues = [], by = 1): void {
    if (!(by >= 0)) throw new RangeError(`${this.name}: a counter cannot go down (inc by ${by})`);
    this.state(values).v += by;
  }

  /** The value of one series (0 if never incremented). */
  get(values: LabelValues = []): number {
    return this.state(values).v;
  }

  /** Every series. */
  snapshot(): MetricSnapshot {
    return {
      name: this.name,
      help: this.help,
      type: "counter",
      series: [...this.series.values()].map((s) => ({
        labels: this.labelsOf(s.values),
        value: s.state.v,
      })),
    };
  }
}

/** A value that goes up and down, or is read from a callback when collected. */
export class Gauge extends Metric<{ v: number }> {
  readonly #collect: ((set: (values: LabelValues, v: number) => void) => void) | undefined;

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    collect?: (set: (values: LabelValues, v: number) => void) => void,
  ) {
    super(name, help, labelNames);
    this.#collect = collect;
  }

  protected initial(): { v: number } {
    return { v: 0 };
  }

  /** A handle on one series. */
  labels(
    ...values: string[]
  ): { inc(by?: number): void; dec(by?: number): void; set(v: number): void; get(): number } {
    const s = this.state(values);
    return {
      inc: (by = 1) => void (s.v += by),
      dec: (by = 1) => void (s.v -= by),
      set: (v) => void (s.v = v),
      get: () => s.v,
    };
  }

  /** Sets the series of `values`. */
  set(values: LabelValues, v: number): void {
    this.state(values).v = v;
  }

  /** The value of one series. */
  get(values: LabelValues = []): number {
    return this.state(values).v;
  }

  /** Every series (a collected gauge is read afresh). */
  snapshot(): MetricSnapshot {
    if (this.#collect) {
      this.series.clear();
      this.#collect((values, v) => this.set(values, v));
    }
    return {
      name: this.name,
      help: this.help,
      type: "gauge",
      series: [...this.series.values()].map((s) => ({
        labels: this.labelsOf(s.values),
        value: s.state.v,
      })),
    };
  }
}

interface HistogramState {
  sum: number;
  count: number;
  counts: Float64Array;
}

/** Observations in cumulative buckets (Prometheus histogram). */
export class Histogram extends Metric<HistogramState> {
  readonly buckets: readonly number[];

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[] = LATENCY_BUCKETS,
  ) {
    super(name, help, labelNames);
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]! > buckets[i - 1]!)) throw new RangeError(`${name}: buckets must increase`);
    }
    this.buckets = buckets;
  }

  protected initial(): HistogramState {
    return { sum: 0, count: 0, counts: new Float64Array(this.buckets.length) };
  }

  /** A handle on one series: `observe(v)` without a map look-up. */
  labels(...values: string[]): { observe(v: number): void } {
    const s = this.state(values);
    return { observe: (v) => this.#observe(s, v) };
  }

  /** Records one observation in the series of `values`. */
  observe(values: LabelValues, v: number): void {
    this.#observe(this.state(values), v);
  }

  #observe(s: HistogramState, v: number): void {
    s.sum += v;
    s.count++;
    const b = this.buckets;
    // Non-cumulative here; the snapshot accumulates.
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        s.counts[i]!++;
        return;
      }
    }
  }

  /** Every series, with cumulative bucket counts. */
  snapshot(): MetricSnapshot {
    return {
      name: this.name,
      help: this.help,
      type: "histogram",
      series: [...this.series.values()].map((s) => {
        let acc = 0;
        const buckets = this.buckets.map((le, i) => ({ le, count: acc += s.state.counts[i]! }));
        buckets.push({ le: Infinity, count: s.state.count });
        return {
          labels: this.labelsOf(s.values),
          value: s.state.sum,
          count: s.state.count,
          buckets,
        };
      }),
    };
  }
}

type AnyMetric = Counter | Gauge | Histogram;

/**
 * An in-process metrics registry: counters, gauges (set, or read by a callback at collection)
 * and histograms, each with named labels; a JSON snapshot and the Prometheus text format.
 * Kept small on purpose: everything the host measures fits these three kinds, and a library
 * (prom-client) would bring Node-specific timers and a global registry we do not want.
 *
 * @example
 * ```ts
 * const metrics = new MetricsRegistry();
 * const calls = metrics.counter("plugsconc_calls_total", "Calls.", ["plugin", "method"]);
 * calls.inc(["cat", "speak"]);
 * console.log(metrics.prometheus());
 * ```
 */
export class MetricsRegistry {
  readonly #metrics = new Map<string, AnyMetric>();

  /** A counter; the same name returns the same counter. */
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#get(name, () => new Counter(name, help, labelNames), Counter);
  }

  /** A gauge; with `collect`, its series are read from the callback at each snapshot. */
  gauge(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    collect?: (set: (values: LabelValues, v: number) => void) => void,
  ): Gauge {
    return this.#get(name, () => new Gauge(name, help, labelNames, collect), Gauge);
  }

  /** A histogram (default buckets: {@link LATENCY_BUCKETS}, in seconds). */
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    buckets?: readonly number[],
  ): Histogram {
    return this.#get(name, () => new Histogram(name, help, labelNames, buckets), Histogram);
  }

  #get<T extends AnyMetric>(
    name: string,
    make: () => T,
    kind: abstract new (...a: never[]) => T,
  ): T {
    const existing = this.#metrics.get(name);
    if (existing !== undefined) {
      if (!(existing instanceof kind)) {
        throw new RangeError(`metric ${name} already exists as a ${existing.constructor.name}`);
      }
      return existing;
    }
    const m = make();
    this.#metrics.set(name, m);
    return m;
  }

  /** Forgets every series of every metric whose first label values are `prefix`. */
  remove(prefix: LabelValues): void {
    for (const m of this.#metrics.values()) m.remove(prefix);
  }

  /** Every metric and series, sorted by name. */
  snapshot(): MetricSnapshot[] {
    return [...this.#metrics.values()].map((m) => m.snapshot()).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0
    );
  }

  /** The Prometheus text exposition format (version 0.0.4). */
  prometheus(): string {
    const out: string[] = [];
    for (const m of this.snapshot()) {
      out.push(`# HELP ${m.name} ${escapeHelp(m.help)}`, `# TYPE ${m.name} ${m.type}`);
      for (const s of m.series) {
        if (m.type !== "histogram") {
          out.push(`${m.name}${labelText(s.labels)} ${num(s.value)}`);
          continue;
        }
        for (const b of s.buckets!) {
          out.push(`${m.name}_bucket${labelText({ ...s.labels, le: num(b.le) })} ${b.count}`);
        }
        out.push(`${m.name}_sum${labelText(s.labels)} ${num(s.value)}`);
        out.push(`${m.name}_count${labelText(s.labels)} ${s.count}`);
      }
    }
    return out.join("\n") + "\n";
  }
}

function num(v: number): string {
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  if (Number.isNaN(v)) return "NaN";
  return String(v);
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const parts = Object.entries(labels).map(([k, v]) =>
    `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`
  );
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}
