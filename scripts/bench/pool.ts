/**
 * Worker pool benchmark (issue 5); prints one JSON object on stdout, progress on stderr.
 *
 * - `trivial`: jobs/s of a job that returns its input, with 2 workers, the default queue limit
 *   (1000) and a caller keeping 1000 jobs in flight (each completion submits the next), the
 *   median of several rounds; `overhead_us` is the wall time per job (1e6 / jobs_per_s).
 * - `sequential`: one job at a time (submit, await, repeat): the round trip through a worker,
 *   p50 and p99 in us.
 * - `hashing`: SHA-256 of 200 files of 1 MiB (created in a temp dir, removed after) with the
 *   integrity job, 1 worker vs 2 workers (warm page cache, median of 5 interleaved runs each, every run listed), and the same
 *   files hashed one by one on the main thread for reference. `cores_used` is the process's
 *   CPU time over wall time.
 * - `cpu_scaling`: pure-JS work, 1 vs 2 workers: the parallelism the machine gave us at that
 *   moment. When it is ~1 (other processes busy), the hashing speedup cannot exceed it.
 *
 * On a 2-core machine the workers share the cores with the main thread (and with whatever
 * else runs), so a 2-worker speedup is bounded below 2.
 *
 * Usage: `deno run -A scripts/bench/pool.ts` (about 10 s).
 *
 * @module
 */
import { join } from "node:path";
import process from "node:process";
import { HASH_JOB_URL, hashFile } from "../../src/integrity/mod.ts";
import { type JobResult, WorkerPool } from "../../src/pool/mod.ts";
import { median, roundHalfUp } from "./_common.ts";

const JOBS = new URL("../../src/pool/_test_jobs.ts", import.meta.url);
const TRIVIAL_JOBS = 100_000;
const TRIVIAL_ROUNDS = 5;
const IN_FLIGHT = 1_000;
const SEQUENTIAL_JOBS = 2_000;
const FILES = 200;
const FILE_BYTES = 1024 * 1024;
const HASH_RUNS = 5;
const TARGET_JOBS_PER_S = 20_000;

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
}

/** Runs `total` echo jobs keeping `window` in flight; returns the elapsed ms. */
function windowed(pool: WorkerPool, total: number, window: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let submitted = 0;
    let done = 0;
    const start = performance.now();
    const onDone = (r: JobResult) => {
      if (!r.ok) return reject(new Error(r.error?.message));
      done++;
      if (submitted < total) submitOne();
      else if (done === total) resolve(performance.now() - start);
    };
    const submitOne = () => {
      pool.submit({ module: JOBS, fn: "echo", input: submitted++ }).then(onDone, reject);
    };
    for (let i = 0; i < Math.min(window, total); i++) submitOne();
  });
}

async function trivial() {
  await using pool = new WorkerPool({ maxWorkers: 2 });
  await windowed(pool, 20_000, IN_FLIGHT); // warm-up: workers started, module loaded, JIT
  const rates: number[] = [];
  for (let i = 0; i < TRIVIAL_ROUNDS; i++) {
    const ms = await windowed(pool, TRIVIAL_JOBS, IN_FLIGHT);
    rates.push(TRIVIAL_JOBS / ms * 1000);
    console.error(`trivial round ${i + 1}: ${Math.round(rates.at(-1)!)} jobs/s`);
  }
  const jobsPerS = median(rates);
  const m = pool.metrics();
  return {
    workers: 2,
    jobs_per_round: TRIVIAL_JOBS,
    rounds: TRIVIAL_ROUNDS,
    in_flight: IN_FLIGHT,
    jobs_per_s: Math.round(jobsPerS),
    jobs_per_s_min: Math.round(Math.min(...rates)),
    jobs_per_s_max: Math.round(Math.max(...rates)),
    overhead_us: roundHalfUp(1e6 / jobsPerS, 2),
    target_jobs_per_s: TARGET_JOBS_PER_S,
    meets_target: jobsPerS >= TARGET_JOBS_PER_S,
    failed: m.failed,
  };
}

async function sequential() {
  await using pool = new WorkerPool({ maxWorkers: 2 });
  for (let i = 0; i < 200; i++) await pool.run({ module: JOBS, fn: "echo", input: i });
  const us: number[] = [];
  for (let i = 0; i < SEQUENTIAL_JOBS; i++) {
    const t = performance.now();
    await pool.run({ module: JOBS, fn: "echo", input: i });
    us.push((performance.now() - t) * 1000);
  }
  return {
    jobs: SEQUENTIAL_JOBS,
    round_trip_us_p50: roundHalfUp(percentile(us, 0.5)),
    round_trip_us_p99: roundHalfUp(percentile(us, 0.99)),
  };
}

interface Timed {
  ms: number;
  /** Process CPU time / wall time: the cores the run actually got. */
  cores: number;
}

async function timed(fn: () => Promise<void>): Promise<Timed> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  await fn();
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { ms, cores: (used.user + used.system) / 1000 / ms };
}

/** Pure-JS CPU work, 1 vs 2 workers: how much parallelism the machine gives right now. */
async function cpuScaling() {
  const run = async (workers: number) => {
    await using pool = new WorkerPool({ maxWorkers: workers });
    await Promise.all(
      Array.from({ length: workers }, () => pool.run({ module: JOBS, fn: "work", input: 1 })),
    );
    return await timed(async () => {
      await Promise.all(
        Array.from({ length: 40 }, () => pool.run({ module: JOBS, fn: "work", input: 5e6 })),
      );
    });
  };
  const one = await run(1);
  const two = await run(2);
  return {
    workers_1_ms: Math.round(one.ms),
    workers_2_ms: Math.round(two.ms),
    speedup: roundHalfUp(one.ms / two.ms, 2),
    workers_2_cores_used: roundHalfUp(two.cores, 2),
  };
}

async function hashAll(workers: number, paths: string[]): Promise<Timed> {
  await using pool = new WorkerPool({ maxWorkers: workers });
  // Start the workers and load the job module outside the measurement.
  await Promise.all(
    Array.from(
      { length: workers },
      () => pool.run({ module: HASH_JOB_URL, fn: "hashFile", input: { path: paths[0]! } }),
    ),
  );
  return await timed(async () => {
    const results = await Promise.all(
      paths.map((path) => pool.submit({ module: HASH_JOB_URL, fn: "hashFile", input: { path } })),
    );
    if (!results.every((r) => r.ok)) throw new Error("a hashing job failed");
  });
}

async function hashing() {
  const dir = await Deno.makeTempDir({ prefix: "plugsconc-bench-pool-" });
  try {
    console.error(`creating ${FILES} files of ${FILE_BYTES} bytes in ${dir}`);
    const chunk = new Uint8Array(FILE_BYTES);
    const paths: string[] = [];
    for (let i = 0; i < FILES; i++) {
      for (let off = 0; off < chunk.length; off += 65536) {
        crypto.getRandomValues(chunk.subarray(off, off + 65536));
      }
      const path = join(dir, `f${String(i).padStart(3, "0")}.bin`);
      await Deno.writeFile(path, chunk);
      paths.push(path);
    }
    const one: Timed[] = [];
    const two: Timed[] = [];
    const inline: number[] = [];
    for (let run = 0; run < HASH_RUNS; run++) {
      one.push(await hashAll(1, paths));
      two.push(await hashAll(2, paths));
      const t = performance.now();
      for (const path of paths) await hashFile({ path });
      inline.push(performance.now() - t);
      console.error(
        `hash run ${run + 1}: 1 worker ${Math.round(one.at(-1)!.ms)} ms, 2 workers ` +
          `${Math.round(two.at(-1)!.ms)} ms (${two.at(-1)!.cores.toFixed(2)} cores), ` +
          `main thread ${Math.round(inline.at(-1)!)} ms`,
      );
    }
    const mib = FILES * FILE_BYTES / (1024 * 1024);
    const ms1 = median(one.map((t) => t.ms));
    const ms2 = median(two.map((t) => t.ms));
    return {
      files: FILES,
      file_bytes: FILE_BYTES,
      workers_1_ms: Math.round(ms1),
      workers_2_ms: Math.round(ms2),
      speedup: roundHalfUp(ms1 / ms2, 2),
      workers_1_mib_per_s: Math.round(mib / ms1 * 1000),
      workers_2_mib_per_s: Math.round(mib / ms2 * 1000),
      runs_workers_1_ms: one.map((t) => Math.round(t.ms)),
      runs_workers_2_ms: two.map((t) => Math.round(t.ms)),
      workers_1_cores_used: roundHalfUp(median(one.map((t) => t.cores)), 2),
      workers_2_cores_used: roundHalfUp(median(two.map((t) => t.cores)), 2),
      main_thread_sequential_ms: Math.round(median(inline)),
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const loadBefore = Deno.loadavg()[0];
const result = {
  benchmark: "pool",
  deno: Deno.version.deno,
  cpus: navigator.hardwareConcurrency,
  trivial: await trivial(),
  sequential: await sequential(),
  hashing: await hashing(),
  cpu_scaling: await cpuScaling(),
  /** 1-minute load average before and after: above ~1, other processes took CPU from us. */
  load_average: [roundHalfUp(loadBefore!, 2), roundHalfUp(Deno.loadavg()[0]!, 2)],
};
console.log(JSON.stringify(result, null, 2));
