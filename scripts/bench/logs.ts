/**
 * Benchmark of the persistent log store (issue 4, DESIGN §6); prints one JSON object on stdout,
 * progress on stderr.
 *
 * - `throughput`: sustained records/s committed to SQLite through `getLogStoreSink` with the
 *   default config (queue 10,000, batches of 1,000, WAL, synchronous NORMAL), ~200-byte rows
 *   (a message of ~90 characters and five fields). The producer offers records as fast as the
 *   queue takes them (it yields when the queue is 3/4 full, so the number is what the writer
 *   sustains, not what a flood drops). `sqlite_baseline` is SQLite alone in this process: the
 *   same rows, 1,000-row transactions, multi-row INSERTs, same indexes.
 * - `caller`: time of one logging call on the caller's side, each call timed, while the writer
 *   drains: `sink_call` is the store sink alone (what the store adds to a call); `logger_call`
 *   is a whole `logger.info()` with only the store sink configured; `logger_call_noop_sink` the
 *   same with a sink that does nothing (LogTape's own cost, for reference). The two logger
 *   measurements alternate, twice each; the run with the lower p99 is reported.
 * - `rpc`: sequential `host.call` round trips (100-byte params) to the `bench` plugin without
 *   logging, with one `logger.info()` per call into the store, and into a no-op sink; the three
 *   alternate in rounds so machine noise hits them alike.
 *
 * Usage: `deno run -A scripts/bench/logs.ts` (about a minute on 2 cores).
 *
 * @module
 */
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { configure, getLogger, type LogRecord, reset, type Sink } from "@logtape/logtape";
import { getLogStoreSink, LogStore, type LogStoreSink } from "../../src/logs/mod.ts";
import { makeHome } from "../../tests/_helpers.ts";
import {
  BENCH_PLUGIN,
  BENCH_PLUGIN_SOURCE,
  machine,
  mean,
  paramsOf,
  pct,
  progressLog,
  readyPlugin,
  round,
  sortedCopy,
} from "./_common.ts";

const THROUGHPUT_SECONDS = 6;
const POOL = 10_000;
const CALLER_SAMPLES = 200_000;
const RPC_ROUNDS = 30;
const RPC_CALLS_PER_ROUND = 400;

const TARGETS = {
  records_per_s_min: 200_000,
  caller_p99_us_max: 5,
  rpc_slowdown_pct_max: 5,
};

const progress = progressLog("logs");

function usStats(samplesMs: Float64Array) {
  const s = sortedCopy(samplesMs);
  return {
    calls: s.length,
    p50_us: round(pct(s, 0.5) * 1000, 2),
    p99_us: round(pct(s, 0.99) * 1000, 2),
    p999_us: round(pct(s, 0.999) * 1000, 2),
    mean_us: round(mean(s) * 1000, 2),
    max_us: round(s[s.length - 1]! * 1000, 1),
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/** What one call of `performance.now()` costs (subtracted from nothing; reported). */
function timerOverheadUs(): number {
  const n = 200_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) performance.now();
  return round(((performance.now() - t0) / n) * 1000, 3);
}

/** Realistic records, made by a LogTape logger (lazy message and all), reused in turn. */
async function recordPool(): Promise<LogRecord[]> {
  const pool: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { keep: (r) => pool.push(r) },
    loggers: [
      { category: ["plugsconc"], sinks: ["keep"], lowestLevel: "trace" },
      { category: ["logtape", "meta"], lowestLevel: "fatal" },
    ],
  });
  const plugin = getLogger(["plugsconc", "plugin", "cat"]);
  const host = getLogger(["plugsconc", "host"]);
  for (let i = 0; i < POOL; i++) {
    if (i % 2 === 0) {
      plugin.info("{message}", {
        plugin: "cat",
        stream: "stderr",
        message: `request ${i} handled: fetched 3 items from the cache in 1.25 ms (user 4711)`,
        requestId: `req-${i}`,
      });
    } else {
      host.info("call {method} of plugin {plugin} finished in {ms} ms", {
        plugin: "cat",
        method: "speak",
        ms: 12.5,
        requestId: `req-${i}`,
        attempt: 1,
        bytes: 1024,
      });
    }
  }
  await reset();
  return pool;
}

async function tempStore(dir: string, name: string): Promise<LogStore> {
  return await LogStore.open(join(dir, name));
}

/** Offers pool records to `sink` for `seconds`, yielding when the queue is 3/4 full. */
async function produce(
  sink: LogStoreSink,
  pool: LogRecord[],
  seconds: number,
  samples?: Float64Array,
): Promise<{ offered: number }> {
  const end = performance.now() + seconds * 1000;
  const high = 7_500;
  let offered = 0;
  let s = 0;
  while (performance.now() < end && (samples === undefined || s < samples.length)) {
    while (sink.stats.queued < high) {
      const record = pool[offered % POOL]!;
      if (samples !== undefined && s < samples.length) {
        const t = performance.now();
        sink(record);
        samples[s++] = performance.now() - t;
      } else {
        sink(record);
      }
      offered++;
      if ((offered & 255) === 0) break;
    }
    // A full queue: give the CPU to the writer instead of spinning on zero-delay timers.
    if (sink.stats.queued >= high) await new Promise((r) => setTimeout(r, 1));
    else await tick();
  }
  return { offered };
}

async function throughput(dir: string, pool: LogRecord[]) {
  await using store = await tempStore(dir, "throughput.db");
  const sink = getLogStoreSink(store, {});
  // Warm-up: JIT, page cache, the worker.
  await produce(sink, pool, 1);
  await sink.flush();
  const before = sink.stats.written;
  const t0 = performance.now();
  const { offered } = await produce(sink, pool, THROUGHPUT_SECONDS);
  await sink.flush();
  const seconds = (performance.now() - t0) / 1000;
  const written = sink.stats.written - before;
  const stats = sink.stats;
  await sink[Symbol.asyncDispose]();
  const rowBytes = avgRowBytes(store);
  return {
    seconds: round(seconds, 2),
    records: written,
    records_per_s: Math.round(written / seconds),
    offered,
    dropped: stats.dropped,
    avg_row_bytes: rowBytes,
  };
}

function avgRowBytes(store: LogStore): number {
  const db = new DatabaseSync(store.path, { readOnly: true });
  try {
    const row = db.prepare(
      "SELECT avg(length(category) + length(coalesce(plugin, '')) + length(message) + " +
        "length(properties) + 16) AS b FROM logs",
    ).get() as { b: number };
    return Math.round(row.b);
  } finally {
    db.close();
  }
}

/** SQLite alone: the same rows the sink wrote, re-inserted in 1,000-row transactions. */
async function sqliteBaseline(dir: string) {
  const src = new DatabaseSync(join(dir, "throughput.db"), { readOnly: true });
  const rows = src.prepare(
    "SELECT ts, level, category, plugin, message, properties FROM logs ORDER BY seq LIMIT 1000",
  ).all() as Record<string, unknown>[];
  src.close();
  const flat: unknown[] = [];
  for (const r of rows) flat.push(r.ts, r.level, r.category, r.plugin, r.message, r.properties);
  (await tempStore(dir, "baseline.db")).close(); // same schema and indexes
  const db = new DatabaseSync(join(dir, "baseline.db"));
  db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -16000");
  const chunk = 32;
  const insert = db.prepare(
    "INSERT INTO logs (ts, level, category, plugin, message, properties) VALUES " +
      Array.from({ length: chunk }, () => "(?, ?, ?, ?, ?, ?)").join(", "),
  );
  const args: unknown[][] = [];
  for (let i = 0; i + chunk <= rows.length; i += chunk) {
    args.push(flat.slice(i * 6, (i + chunk) * 6));
  }
  const perTx = args.length * chunk;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 3_000) {
    db.exec("BEGIN");
    for (const a of args) insert.run(...(a as [string]));
    db.exec("COMMIT");
    n += perTx;
  }
  const seconds = (performance.now() - t0) / 1000;
  db.close();
  return { records_per_s: Math.round(n / seconds), transaction_rows: perTx };
}

async function caller(dir: string, pool: LogRecord[]) {
  await using store = await tempStore(dir, "caller.db");
  const sink = getLogStoreSink(store, {});
  await produce(sink, pool, 0.5); // warm-up
  const sinkSamples = new Float64Array(CALLER_SAMPLES);
  await produce(sink, pool, 60, sinkSamples); // until the samples are full
  await sink.flush();

  // Whole logger calls, paced below what the writer sustains (so no drops distort the tail).
  const loggerCalls = async (target: Sink, queued: () => number) => {
    await configure({
      reset: true,
      sinks: { target },
      loggers: [
        { category: ["bench"], sinks: ["target"], lowestLevel: "info" },
        { category: ["logtape", "meta"], lowestLevel: "fatal" },
      ],
    });
    const log = getLogger(["bench", "plugin", "cat"]);
    const samples = new Float64Array(CALLER_SAMPLES);
    for (let i = 0; i < CALLER_SAMPLES; i++) {
      const t = performance.now();
      log.info("call {method} of plugin {plugin} finished in {ms} ms", {
        plugin: "cat",
        method: "speak",
        ms: 12.5,
        requestId: `req-${i}`,
        attempt: 1,
        bytes: 1024,
      });
      samples[i] = performance.now() - t;
      if ((i & 511) === 511) {
        await tick();
        while (queued() > 5_000) await new Promise((r) => setTimeout(r, 1));
      }
    }
    await reset();
    return samples;
  };
  await sink[Symbol.asyncDispose]();
  // Alternate the two, twice: machine noise (GC, the other vCPU) hits both alike.
  const runs: { store: Float64Array[]; noop: Float64Array[] } = { store: [], noop: [] };
  let dropped = 0;
  for (let r = 0; r < 2; r++) {
    runs.noop.push(await loggerCalls(() => {}, () => 0));
    const storeSink = getLogStoreSink(store, {});
    runs.store.push(await loggerCalls(storeSink, () => storeSink.stats.queued));
    dropped += storeSink.stats.dropped;
    await storeSink[Symbol.asyncDispose]();
  }
  const best = (xs: Float64Array[]) =>
    xs.map(usStats).reduce((a, b) => (b.p99_us < a.p99_us ? b : a));
  return {
    timer_overhead_us: timerOverheadUs(),
    sink_call: usStats(sinkSamples),
    logger_call: {
      ...best(runs.store),
      dropped,
      p99_us_each_run: runs.store.map((x) => usStats(x).p99_us),
    },
    logger_call_noop_sink: {
      ...best(runs.noop),
      p99_us_each_run: runs.noop.map((x) => usStats(x).p99_us),
    },
  };
}

async function rpc(dir: string) {
  await using home = await makeHome({ logging: { store: { enabled: false } } });
  await home.addPlugin(BENCH_PLUGIN_SOURCE);
  await using host = await home.startHost();
  readyPlugin(host, BENCH_PLUGIN);
  await using store = await tempStore(dir, "rpc.db");
  const sink = getLogStoreSink(store, {});
  await configure({
    reset: true,
    sinks: { store: sink, noop: () => {} },
    loggers: [
      { category: ["bench", "store"], sinks: ["store"], lowestLevel: "info" },
      { category: ["bench", "noop"], sinks: ["noop"], lowestLevel: "info" },
      { category: ["logtape", "meta"], lowestLevel: "fatal" },
    ],
  });
  const logStore = getLogger(["bench", "store"]);
  const logNoop = getLogger(["bench", "noop"]);
  const params = paramsOf(100);
  type Mode = "none" | "store" | "noop";
  const once = async (mode: Mode, i: number) => {
    await host.call("bench", "echo", params);
    if (mode === "none") return;
    (mode === "store" ? logStore : logNoop).info("call {method} of {plugin} finished", {
      plugin: "bench",
      method: "echo",
      requestId: `req-${i}`,
      ms: 0.08,
    });
  };
  const samples: Record<Mode, number[]> = { none: [], store: [], noop: [] };
  for (let i = 0; i < 1_000; i++) await once(i % 2 ? "store" : "none", i); // warm-up
  for (let r = 0; r < RPC_ROUNDS; r++) {
    for (const mode of ["none", "store", "noop"] as const) {
      for (let i = 0; i < RPC_CALLS_PER_ROUND; i++) {
        const t = performance.now();
        await once(mode, i);
        samples[mode].push(performance.now() - t);
      }
    }
  }
  await reset();
  await sink.flush();
  const written = sink.stats.written;
  await sink[Symbol.asyncDispose]();
  const stat = (xs: number[]) => {
    const s = sortedCopy(xs);
    return { calls: s.length, p50_us: round(pct(s, 0.5) * 1000), mean_us: round(mean(s) * 1000) };
  };
  const none = stat(samples.none);
  const store_ = stat(samples.store);
  const noop = stat(samples.noop);
  const slowdown = (x: { mean_us: number }) =>
    round(((x.mean_us - none.mean_us) / none.mean_us) * 100, 2);
  return {
    host_call_no_logging: none,
    host_call_plus_one_record_to_store: store_,
    host_call_plus_one_record_to_noop_sink: noop,
    records_written: written,
    slowdown_store_pct_mean: slowdown(store_),
    slowdown_noop_sink_pct_mean: slowdown(noop),
    slowdown_store_pct_p50: round(((store_.p50_us - none.p50_us) / none.p50_us) * 100, 2),
  };
}

/** {@linkcode machine}, with the load averages as `/proc/loadavg` writes them. */
async function machineInfo() {
  const info = await machine();
  let load: string | undefined;
  try {
    load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  } catch { /* not Linux */ }
  return { ...info, loadavg_at_start: load ?? null };
}

async function main() {
  const started = performance.now();
  const info = await machineInfo();
  const dir = await Deno.makeTempDir({ prefix: "plugsconc-logs-bench-" });
  try {
    const pool = await recordPool();
    progress(`throughput: ${THROUGHPUT_SECONDS} s through the sink`);
    const tp = await throughput(dir, pool);
    progress("SQLite baseline: 3 s");
    const baseline = await sqliteBaseline(dir);
    progress(`caller: ${CALLER_SAMPLES} timed calls x 3`);
    const calls = await caller(dir, pool);
    progress(`rpc: ${RPC_ROUNDS} rounds x ${RPC_CALLS_PER_ROUND} calls x 3 modes`);
    const rt = await rpc(dir);
    const result = {
      benchmark: "plugsconc logs",
      machine: info,
      throughput: {
        ...tp,
        sqlite_baseline: baseline,
        ratio_to_baseline: round(tp.records_per_s / baseline.records_per_s, 2),
      },
      caller: calls,
      rpc: rt,
      targets: {
        ...TARGETS,
        records_per_s_ok: tp.records_per_s >= TARGETS.records_per_s_min,
        caller_sink_p99_ok: calls.sink_call.p99_us <= TARGETS.caller_p99_us_max,
        caller_logger_p99_ok: calls.logger_call.p99_us <= TARGETS.caller_p99_us_max,
        rpc_slowdown_ok: rt.slowdown_store_pct_mean <= TARGETS.rpc_slowdown_pct_max,
      },
      total_seconds: round((performance.now() - started) / 1000, 1),
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

await main();
