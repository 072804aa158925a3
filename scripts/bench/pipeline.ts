/**
 * What the call pipeline (rate limit, circuit breaker, retry, deadline, bulkhead, instance
 * choice, metrics) adds to a plugin call (issue 6). Prints one JSON object on stdout.
 *
 * Two hosts run the `bench` plugin in this process: one with every policy on (a rate limit
 * high enough never to refuse, the breaker, 3 retry attempts, the bulkhead), one with every
 * policy off (no rate limit, no breaker, 1 attempt). Each is measured beside a raw
 * `PluginProcess.call` on its own process, in interleaved blocks, so machine load hits every
 * path alike:
 *
 * - `sequential`: one call at a time with ~100-byte params; p50/p99 of `host.call` and of the
 *   raw call; `added_p50_us` = difference of the medians.
 * - `throughput`: 64 calls in flight for a fixed time, calls/s with policies on and off and
 *   raw; `added_us_per_call_at_saturation` turns the differences into time per call.
 * - `open_breaker`: how long a call takes to fail with `CircuitOpenError` (target: well under
 *   a millisecond).
 *
 * Usage: `deno run -A scripts/bench/pipeline.ts` (about 20 s).
 *
 * @module
 */
import type { PluginHost } from "../../src/host/mod.ts";
import { makeHome } from "../../tests/_helpers.ts";
import { BENCH_PLUGIN_SOURCE, paramsOf, pct, progressLog, round, sortedCopy } from "./_common.ts";

const WARMUP = 2_000;
const CALLS = 10_000;
const BLOCKS = 10;
const IN_FLIGHT = 64;
const THROUGHPUT_MS = 3_000;
const TARGET_ADDED_P50_US = 10;

const params = paramsOf(100);
const progress = progressLog("pipeline");

function stats(samples: Float64Array) {
  const s = sortedCopy(samples);
  return { p50_us: round(pct(s, 0.5) * 1000), p99_us: round(pct(s, 0.99) * 1000) };
}

async function hostWith(defaults: Record<string, unknown>) {
  const home = await makeHome({
    watcher: { enabled: false },
    logging: { level: "warning", store: { enabled: false } },
    worker_pool: { enabled: false },
    defaults,
  });
  await home.addPlugin(BENCH_PLUGIN_SOURCE);
  const host = await home.startHost();
  return { home, host };
}

type Call = () => Promise<unknown>;

function paths(host: PluginHost): { pipeline: Call; raw: Call } {
  const proc = host.supervisor("bench")!.process!;
  return {
    pipeline: () => host.call("bench", "echo", params),
    raw: () => proc.call("echo", params, { timeoutMs: 30_000 }),
  };
}

async function sequential(calls: Record<string, Call>) {
  const names = Object.keys(calls);
  const per = Math.floor(CALLS / BLOCKS);
  const samples = Object.fromEntries(names.map((n) => [n, new Float64Array(per * BLOCKS)]));
  for (const n of names) for (let i = 0; i < WARMUP; i++) await calls[n]!();
  for (let b = 0; b < BLOCKS; b++) {
    for (const n of names) {
      const call = calls[n]!;
      const out = samples[n]!;
      for (let i = 0; i < per; i++) {
        const t = performance.now();
        await call();
        out[b * per + i] = performance.now() - t;
      }
    }
  }
  return Object.fromEntries(names.map((n) => [n, stats(samples[n]!)]));
}

async function throughput(call: Call): Promise<number> {
  let done = 0;
  const end = performance.now() + THROUGHPUT_MS;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (performance.now() < end) {
      await call();
      done++;
    }
  }));
  return Math.round(done / ((performance.now() - t0) / 1000));
}

const on = await hostWith({
  rate_limit: { rps: 1e9, burst: 1e9 },
  circuit_breaker: { enabled: true },
  retry: { max_attempts: 3 },
  bulkhead: { max_in_flight: 1024, queue: 1024 },
});
const off = await hostWith({
  rate_limit: { rps: 0 },
  circuit_breaker: { enabled: false },
  retry: { max_attempts: 1 },
});
try {
  progress("sequential calls");
  const a = paths(on.host);
  const b = paths(off.host);
  const seq = await sequential({
    policies_on: a.pipeline,
    raw_on: a.raw,
    policies_off: b.pipeline,
    raw_off: b.raw,
  });
  progress("throughput");
  const tput = {
    policies_on_calls_per_s: await throughput(a.pipeline),
    policies_off_calls_per_s: await throughput(b.pipeline),
    raw_calls_per_s: await throughput(a.raw),
  };

  // An open breaker: a third host whose plugin fails every call.
  progress("open breaker");
  const broken = await hostWith({
    retry: { max_attempts: 1 },
    circuit_breaker: { failure_threshold: 1, recovery_ms: 600_000 },
  });
  let openP50 = 0;
  let openP99 = 0;
  try {
    await broken.host.call("bench", "nope", {}).catch(() => {}); // unknown method: not counted
    await broken.host.supervisor("bench")!.stop(); // now every call fails: the breaker opens
    await broken.host.call("bench", "echo", params).catch(() => {});
    const n = 10_000;
    const s = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await broken.host.call("bench", "echo", params).catch(() => {});
      s[i] = performance.now() - t;
    }
    ({ p50_us: openP50, p99_us: openP99 } = stats(s));
  } finally {
    await broken.host.stop();
    await broken.home[Symbol.asyncDispose]();
  }

  const addedOn = round(seq.policies_on!.p50_us - seq.raw_on!.p50_us);
  console.log(JSON.stringify(
    {
      bench: "pipeline",
      cpus: navigator.hardwareConcurrency,
      sequential_100b: seq,
      added_p50_us: {
        policies_on: addedOn,
        policies_off: round(seq.policies_off!.p50_us - seq.raw_off!.p50_us),
      },
      added_p99_us: { policies_on: round(seq.policies_on!.p99_us - seq.raw_on!.p99_us) },
      throughput_64_in_flight: tput,
      // At saturation the wake-ups overlap, so the difference of the time per call is the
      // pipeline's own cost, which sequential medians (dominated by pipe wake-ups) hide.
      added_us_per_call_at_saturation: {
        policies_on: round(1e6 / tput.policies_on_calls_per_s - 1e6 / tput.raw_calls_per_s, 2),
        policies_off: round(1e6 / tput.policies_off_calls_per_s - 1e6 / tput.raw_calls_per_s, 2),
      },
      open_breaker_fail_fast: { p50_us: openP50, p99_us: openP99 },
      targets: { added_p50_us_max: TARGET_ADDED_P50_US, met: addedOn <= TARGET_ADDED_P50_US },
    },
    null,
    2,
  ));
} finally {
  await on.host.stop();
  await off.host.stop();
  await on.home[Symbol.asyncDispose]();
  await off.home[Symbol.asyncDispose]();
}
