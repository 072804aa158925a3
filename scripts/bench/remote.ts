/**
 * Remote plugins over NATS on this machine: sequential p50 and 8-caller calls/s of a tiny
 * echo through one and two `plugsconc serve` workers, beside the same plugin called locally;
 * and calls/s of a CPU-bound method (`spin`) with one and then two workers. Prints one JSON
 * object. Needs nats-server (Debian: apt-get install nats-server).
 *
 * @module
 */
import { join, resolve } from "node:path";
import { stringify } from "yaml";
import { PluginHost } from "../../src/host/mod.ts";
import { spawnWorker, startNatsServer, type WorkerProcess } from "../../src/remote/_testing.ts";
import { pct, round, sortedCopy } from "./_common.ts";

const ROOT = resolve(import.meta.dirname!, "../..");
const FIXTURE = join(ROOT, "tests/fixtures/plugins/remote_echo");
const PLUGIN = "remote-echo";
const SEQ = 1000;
const PAR_CALLS = 4000;
const CPU_N = 30_000_000;
const CPU_CALLS = 80;

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isFile) await Deno.copyFile(join(from, e.name), join(to, e.name));
  }
}

async function home(config: Record<string, unknown>): Promise<{ dir: string; config: string }> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-bench-remote-" }));
  await copyDir(FIXTURE, join(dir, "plugins", "remote_echo"));
  const path = join(dir, "config.yaml");
  await Deno.writeTextFile(
    path,
    stringify({
      dirs: { plugins: "./plugins", data: "./data" },
      logging: { level: "warning", format: "json" },
      watcher: { enabled: false },
      ...config,
    }),
  );
  return { dir, config: path };
}

async function sequentialP50Us(host: PluginHost): Promise<number> {
  for (let i = 0; i < 200; i++) await host.call(PLUGIN, "echo", { i });
  const ms = new Float64Array(SEQ);
  for (let i = 0; i < SEQ; i++) {
    const t0 = performance.now();
    await host.call(PLUGIN, "echo", { i });
    ms[i] = performance.now() - t0;
  }
  return round(pct(sortedCopy(ms), 0.5) * 1000, 0);
}

async function callsPerS(
  host: PluginHost,
  method: string,
  params: unknown,
  total: number,
  callers = 8,
): Promise<number> {
  let left = total;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: callers }, async () => {
    while (left-- > 0) await host.call(PLUGIN, method, params, { timeoutMs: 60_000 });
  }));
  return round(total / ((performance.now() - t0) / 1000), 0);
}

async function measure(host: PluginHost) {
  return {
    sequential_p50_us: await sequentialP50Us(host),
    calls_per_s_8_callers: await callsPerS(host, "echo", { x: 1 }, PAR_CALLS),
  };
}

async function workersSeen(host: PluginHost, n: number): Promise<void> {
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    const p = host.plugins().find((x) => x.name === PLUGIN);
    if ((p?.instances[0]?.workers?.length ?? 0) >= n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the host did not see ${n} workers`);
}

const dirs: string[] = [];
const workers: WorkerProcess[] = [];
await using nats = await startNatsServer();
try {
  const local = await home({});
  dirs.push(local.dir);
  let localResult;
  let localCpu;
  {
    await using host = await PluginHost.start({ configPath: local.config });
    localResult = await measure(host);
    localCpu = await callsPerS(host, "spin", { n: CPU_N }, CPU_CALLS / 2);
  }
  const w1 = await home({});
  const w2 = await home({});
  const h = await home({
    remote: { nats: { servers: [nats.url] } },
    plugins: { [PLUGIN]: { placement: "remote", health: { interval_ms: 200 } } },
  });
  dirs.push(w1.dir, w2.dir, h.dir);
  const a = spawnWorker(w1.config, nats.url, "bench-1");
  workers.push(a);
  await a.ready;
  await using host = await PluginHost.start({ configPath: h.config });
  await workersSeen(host, 1);
  const one = await measure(host);
  const cpuOne = await callsPerS(host, "spin", { n: CPU_N }, CPU_CALLS);
  const b = spawnWorker(w2.config, nats.url, "bench-2");
  workers.push(b);
  await b.ready;
  await workersSeen(host, 2);
  const two = await measure(host);
  const cpuTwo = await callsPerS(host, "spin", { n: CPU_N }, CPU_CALLS);
  console.log(JSON.stringify(
    {
      bench: "remote",
      cores: navigator.hardwareConcurrency,
      echo: { local: localResult, nats_1_worker: one, nats_2_workers: two },
      cpu_bound: {
        method: `spin n=${CPU_N}`,
        callers: 8,
        local_calls_per_s: localCpu,
        nats_1_worker_calls_per_s: cpuOne,
        nats_2_workers_calls_per_s: cpuTwo,
        scaling_1_to_2: round(cpuTwo / cpuOne, 2),
      },
    },
    null,
    2,
  ));
} finally {
  await Promise.all(workers.map((w) => w.stop()));
  for (const d of dirs) await Deno.remove(d, { recursive: true }).catch(() => {});
}
