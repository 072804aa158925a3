/**
 * Helpers shared by the benchmark scripts in this folder: rounding, percentiles and latency
 * statistics, CPU accounting from `/proc`, machine info, the `bench` plugin. Private: the
 * leading `_` keeps `all.ts` from running it as a benchmark.
 *
 * @module
 */
import { join } from "node:path";
import type { PluginHost, PluginInfo } from "../../src/host/mod.ts";

// ---- rounding and statistics ----------------------------------------------------------------

/**
 * `x` rounded to `digits` decimals as `Number(x.toFixed(digits))` does it (the decimal value of
 * the double, halves away from zero).
 */
export function round(x: number, digits = 1): number {
  return Number(x.toFixed(digits));
}

/**
 * `n` rounded to `digits` decimals as `Math.round(n * 10 ** digits) / 10 ** digits` does it
 * (halves towards +Infinity, after the multiplication's own rounding). Not always the same
 * number as {@linkcode round}: `round(1.45)` is 1.5, `roundHalfUp(1.45)` is 1.4.
 */
export function roundHalfUp(n: number, digits = 1): number {
  return Math.round(n * 10 ** digits) / 10 ** digits;
}

/** Nearest-rank percentile (`q` in 0..1) of sorted values. */
export function pct(sorted: ArrayLike<number>, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** The middle value (the upper one of an even count) of `values`, which are not modified. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** A sorted (ascending) copy of `values`. */
export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/**
 * The arithmetic mean of `values`, summed in their order (pass a {@linkcode sortedCopy} for the
 * same sum every statistic of these scripts uses).
 */
export function mean(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i]!;
  return sum / values.length;
}

/** Latency statistics of samples: p50, p90, p99, mean and max, in us to 1 decimal. */
export interface LatencyUs {
  /** Median, us. */
  readonly p50_us: number;
  /** 90th percentile (nearest rank), us. */
  readonly p90_us: number;
  /** 99th percentile (nearest rank), us. */
  readonly p99_us: number;
  /** Mean, us. */
  readonly mean_us: number;
  /** Largest sample, us. */
  readonly max_us: number;
}

/** {@linkcode LatencyUs} of `samplesMs` (milliseconds, in any order; not modified). */
export function latencyUs(samplesMs: ArrayLike<number>): LatencyUs {
  const s = sortedCopy(samplesMs);
  return {
    p50_us: round(pct(s, 0.5) * 1000),
    p90_us: round(pct(s, 0.9) * 1000),
    p99_us: round(pct(s, 0.99) * 1000),
    mean_us: round(mean(s) * 1000),
    max_us: round(s[s.length - 1]! * 1000),
  };
}

// ---- CPU accounting (Linux /proc; undefined elsewhere) --------------------------------------

/** CPU time (ns) of every thread of `pid`, from `/proc/<pid>/task/<tid>/schedstat`. */
export function cpuNs(pid: number): number | undefined {
  try {
    let sum = 0;
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        sum += Number(Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/schedstat`).split(" ")[0]);
      } catch { /* the thread ended */ }
    }
    return sum;
  } catch {
    return undefined;
  }
}

/**
 * CPU time (ns) of every process on the machine except `exclude`. Summed from each thread's
 * schedstat: `/proc/stat` is tick-sampled and badly over-counts a ping-pong workload.
 */
export function othersCpuNs(exclude: ReadonlySet<number>): number | undefined {
  try {
    let sum = 0;
    for (const e of Deno.readDirSync("/proc")) {
      const pid = Number(e.name);
      if (!Number.isInteger(pid) || exclude.has(pid)) continue;
      sum += cpuNs(pid) ?? 0;
    }
    return sum;
  } catch {
    return undefined;
  }
}

/** What {@linkcode measureCpu} found. */
export interface CpuUse<T> {
  /** What `fn` returned. */
  readonly result: T;
  /** CPU time (ns) each of the given pids used during `fn`, in their order; `undefined` if unknown. */
  readonly ns: readonly (number | undefined)[];
  /** CPU time (ns, at least 0) every other process used during `fn`; `undefined` if unknown. */
  readonly othersNs: number | undefined;
  /** Wall time (ns) of `fn`. */
  readonly wallNs: number;
}

/**
 * Runs `fn` and measures the CPU time of each of `pids` and of the rest of the machine over it
 * (read before `fn` starts and after it ends, processes first, then the rest), and its wall time.
 */
export async function measureCpu<T>(
  pids: readonly number[],
  fn: () => Promise<T>,
): Promise<CpuUse<T>> {
  const exclude = new Set(pids);
  const before = pids.map((pid) => cpuNs(pid));
  const others0 = othersCpuNs(exclude);
  const t0 = performance.now();
  const result = await fn();
  const wallNs = (performance.now() - t0) * 1e6;
  const after = pids.map((pid) => cpuNs(pid));
  const others1 = othersCpuNs(exclude);
  return {
    result,
    ns: pids.map((_, i) => {
      const b = before[i];
      const a = after[i];
      return a === undefined || b === undefined ? undefined : a - b;
    }),
    othersNs: others0 === undefined || others1 === undefined
      ? undefined
      : Math.max(0, others1 - others0),
    wallNs,
  };
}

// ---- machine, output ------------------------------------------------------------------------

/** The machine a benchmark runs on, as the JSON outputs report it. */
export interface Machine {
  /** Now, ISO 8601. */
  readonly date: string;
  /** `Deno.version.deno`. */
  readonly deno: string;
  /** `Deno.version.v8`. */
  readonly v8: string;
  /** `<os>-<arch>`. */
  readonly os: string;
  /** `navigator.hardwareConcurrency`. */
  readonly nproc: number;
  /** The CPU's model name from `/proc/cpuinfo`; `null` where there is none. */
  readonly cpu: string | null;
}

/** {@linkcode Machine} info of this machine, now. */
export async function machine(): Promise<Machine> {
  let cpu: string | undefined;
  try {
    cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/^model name\s*:\s*(.*)$/m)?.[1];
  } catch { /* not Linux */ }
  return {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    os: `${Deno.build.os}-${Deno.build.arch}`,
    nproc: navigator.hardwareConcurrency,
    cpu: cpu ?? null,
  };
}

/** The 1, 5 and 15 minute load averages now, each {@linkcode round}ed to 2 decimals. */
export function loadavg(): number[] {
  return Deno.loadavg().map((x) => round(x, 2));
}

/** A function printing `[<name> bench] <message>` progress lines on stderr. */
export function progressLog(name: string): (message: string) => void {
  return (message) => console.error(`[${name} bench] ${message}`);
}

// ---- the bench plugin -----------------------------------------------------------------------

/** Name of the echo plugin the benchmarks call. */
export const BENCH_PLUGIN = "bench";

/** Source folder of {@linkcode BENCH_PLUGIN} (`plugins/bench/` beside this file). */
export const BENCH_PLUGIN_SOURCE: string = join(import.meta.dirname!, "plugins", BENCH_PLUGIN);

/** `{"text":"xxx…"}` whose JSON is exactly `bytes` long. */
export function paramsOf(bytes: number): { text: string } {
  const empty = JSON.stringify({ text: "" }).length;
  const params = { text: "x".repeat(bytes - empty) };
  if (JSON.stringify(params).length !== bytes) throw new Error("params size mismatch");
  return params;
}

/** What `host.plugins()` reports for plugin `name`; throws unless it is ready. */
export function readyPlugin(host: PluginHost, name: string): PluginInfo {
  const info = host.plugins().find((p) => p.name === name);
  if (info?.state !== "ready") {
    throw new Error(`the ${name} plugin is ${info?.state}: ${info?.error}`);
  }
  return info;
}
