/**
 * HTTP gateway benchmark (issue 7). Prints one JSON object on stdout; progress goes to stderr.
 *
 * The host, its gateway and the `bench` plugin (`plugins/bench/`, echo) run in this process;
 * the HTTP client is a second Deno process (this file with `--client`), so client and server do
 * not share an event loop and the numbers are what another program on the machine would see.
 * The client is driven over its stdin/stdout, one JSON command and one JSON answer per line.
 * Loopback only; every loop is bounded in count and time.
 *
 * - `sequential_100b`: one request at a time, ~100-byte params, in interleaved blocks over
 *   four paths: a direct `host.call` (in this process), `POST /v1/plugins/bench/echo` through
 *   the gateway, `http_floor`, a bare `Deno.serve` handler that reads the JSON body and answers
 *   a constant (what HTTP itself costs on this machine, client included), and
 *   `http_floor_with_host_call`, the same handler making the `host.call` (the least any HTTP
 *   front of the host costs). `gateway_added_p50_us` = gateway - direct host.call (target
 *   <= 150 us); `http_front_floor_added_p50_us` = floor with call - direct host.call (the part
 *   of that no gateway code can remove); `gateway_logic_p50_us` = gateway - floor with call:
 *   the router, auth, body limit, request id, context, cancellation link and metrics.
 * - `concurrent_64`: 64 requests in flight over 64 keep-alive connections (counted server-side
 *   from /proc/net/tcp) for up to 50,000 requests or 15 s: requests/s, p50/p99 latency; and the
 *   same load as direct `host.call`s for comparison.
 * - CPU per request of the server process (host + gateway), the plugin and the client, and how
 *   many CPUs everything else used meanwhile (`other_load_cpus`; the machine is shared).
 *
 * Logging is set up as `run` sets it up (LogTape with implicit contexts, level info), so the
 * request-id context and the access record's level check are measured too.
 *
 * Usage: `deno run -A scripts/bench/http.ts` (about 40 s on 2 cores).
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { configure, reset } from "@logtape/logtape";
import { Gateway } from "../../src/server/mod.ts";
import { makeHome } from "../../tests/_helpers.ts";
import {
  BENCH_PLUGIN as PLUGIN,
  BENCH_PLUGIN_SOURCE,
  latencyUs,
  loadavg,
  measureCpu,
  paramsOf,
  progressLog,
  readyPlugin,
  round,
} from "./_common.ts";

const SEQ_WARMUP = 1_000;
const SEQ_BLOCK = 500;
const SEQ_BLOCKS = 10;
const CONCURRENCY = 64;
const LOAD_MAX_REQUESTS = 50_000;
const LOAD_BUDGET_MS = 15_000;
const LOAD_WARMUP = 3_000;
const TARGET_ADDED_P50_US = 150;

const progress = progressLog("http");

function usStats(samplesMs: readonly number[]) {
  return { requests: samplesMs.length, ...latencyUs(samplesMs) };
}

// ---- the client process ---------------------------------------------------------------------

type Command =
  | { op: "seq"; url: string; body: string; n: number }
  | { op: "load"; url: string; body: string; concurrency: number; max: number; budgetMs: number }
  | { op: "exit" };

async function post(url: string, body: string): Promise<void> {
  const r = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${url} answered ${r.status}: ${text.slice(0, 200)}`);
}

async function clientMain(): Promise<void> {
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buffered = "";
  const reply = (value: unknown) => console.log(JSON.stringify(value));
  for await (const chunk of lines) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const cmd = JSON.parse(buffered.slice(0, nl)) as Command;
      buffered = buffered.slice(nl + 1);
      if (cmd.op === "exit") return;
      if (cmd.op === "seq") {
        const samples: number[] = [];
        for (let i = 0; i < cmd.n; i++) {
          const t0 = performance.now();
          await post(cmd.url, cmd.body);
          samples.push(performance.now() - t0);
        }
        reply({ samples });
      } else {
        const samples: number[] = [];
        const deadline = performance.now() + cmd.budgetMs;
        let issued = 0;
        const t0 = performance.now();
        const lane = async () => {
          while (issued < cmd.max && performance.now() < deadline) {
            issued++;
            const s = performance.now();
            await post(cmd.url, cmd.body);
            samples.push(performance.now() - s);
          }
        };
        await Promise.all(Array.from({ length: cmd.concurrency }, lane));
        reply({ samples, seconds: (performance.now() - t0) / 1000 });
      }
    }
  }
}

// ---- CPU accounting (Linux /proc; null elsewhere) --------------------------------------------

/** CPU per request of each process, and the CPUs the rest of the machine used, over `fn`. */
async function metered<T extends { requests: number }>(
  pids: { server: number; plugin: number; client: number | undefined },
  fn: () => Promise<T>,
) {
  const all = [pids.server, pids.plugin, ...(pids.client ? [pids.client] : [])];
  const { result, ns, othersNs, wallNs } = await measureCpu(all, fn);
  const per = (i: number) => {
    const used = ns[i];
    return used === undefined ? null : round(used / result.requests / 1000, 2);
  };
  const cpu = {
    server_cpu_us_per_request: per(0),
    plugin_cpu_us_per_request: per(1),
    ...(pids.client ? { client_cpu_us_per_request: per(2) } : {}),
    other_load_cpus: othersNs === undefined ? null : round(othersNs / wallNs, 2),
  };
  return { result, cpu };
}

/** Established TCP connections whose local port is `port` (the server's side), from /proc. */
function establishedTo(port: number): number | null {
  try {
    let n = 0;
    for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
      let text: string;
      try {
        text = Deno.readTextFileSync(file);
      } catch {
        continue;
      }
      for (const line of text.split("\n").slice(1)) {
        const cols = line.trim().split(/\s+/);
        if (cols.length < 4) continue;
        const localPort = parseInt(cols[1]!.split(":")[1]!, 16);
        if (localPort === port && cols[3] === "01") n++;
      }
    }
    return n;
  } catch {
    return null;
  }
}

// ---- the server process -----------------------------------------------------------------------

class Client {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;

  constructor() {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, "--client"],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
      new LineSplitter(),
    )[Symbol.asyncIterator]();
  }

  get pid(): number {
    return this.#child.pid;
  }

  async ask<T>(cmd: Command): Promise<T> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(cmd) + "\n"));
    const next = await this.#lines.next();
    if (next.done) throw new Error("the client exited");
    return JSON.parse(next.value) as T;
  }

  async close(): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify({ op: "exit" }) + "\n"));
    await this.#writer.close().catch(() => {});
    const status = await this.#child.status;
    if (!status.success) throw new Error(`the client exited with ${status.code}`);
  }
}

class LineSplitter extends TransformStream<string, string> {
  constructor() {
    let rest = "";
    super({
      transform(chunk, out) {
        rest += chunk;
        let nl: number;
        while ((nl = rest.indexOf("\n")) >= 0) {
          out.enqueue(rest.slice(0, nl));
          rest = rest.slice(nl + 1);
        }
      },
    });
  }
}

/**
 * Whether this Deno aborts `request.signal` after a successful response (the legacy default;
 * off under `--unstable-no-legacy-abort` or `"unstable": ["no-legacy-abort"]`). In legacy mode
 * every request whose signal the handler touched pays for the abort: the gateway does (a
 * client disconnect must cancel the call), so this flag moves its latency a lot.
 */
async function legacyAbort(): Promise<boolean> {
  let aborted = false;
  let finish!: () => void;
  const settled = new Promise<void>((resolve) => (finish = resolve));
  await using probe = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (r, info) => {
      r.signal.addEventListener("abort", () => (aborted = true));
      info.completed.finally(() => setTimeout(finish, 50));
      return new Response("ok");
    },
  );
  await (await fetch(`http://127.0.0.1:${probe.addr.port}/`)).text();
  await settled;
  return aborted;
}

async function serverMain(): Promise<void> {
  const started = performance.now();
  const legacy = await legacyAbort();
  await configure({
    reset: true,
    contextLocalStorage: new AsyncLocalStorage(),
    sinks: { none: () => {} },
    loggers: [
      { category: ["plugsconc"], sinks: ["none"], lowestLevel: "info" },
      { category: ["logtape", "meta"], sinks: ["none"], lowestLevel: "warning" },
    ],
  });
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(BENCH_PLUGIN_SOURCE);
  progress("starting the host and the gateway");
  await using host = await home.startHost();
  const pluginPid = readyPlugin(host, PLUGIN).pid!;
  await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
  // Two floors on one bare server: `/` reads the body and answers a constant; `/call` also
  // makes the host.call, as the least any HTTP front of the host could do.
  await using floor = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const p = await request.json();
      const body = request.url.endsWith("/call")
        ? JSON.stringify({ result: await host.call(PLUGIN, "echo", p) })
        : '{"result":"ok"}';
      return new Response(body, { headers: { "content-type": "application/json" } });
    },
  );
  const params = paramsOf(100);
  const body = JSON.stringify(params);
  const gatewayUrl = `${gateway.url}/v1/plugins/${PLUGIN}/echo`;
  const floorUrl = `http://127.0.0.1:${floor.addr.port}/`;
  const floorCallUrl = `http://127.0.0.1:${floor.addr.port}/call`;
  const direct = () => host.call(PLUGIN, "echo", params);
  const check = await fetch(gatewayUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  }).then((r) => r.json());
  if (check?.result?.text !== params.text) throw new Error("echo returned something else");

  const client = new Client();
  try {
    const pids = { server: Deno.pid, plugin: pluginPid, client: client.pid };
    progress(`sequential: ${SEQ_BLOCKS} x ${SEQ_BLOCK} requests x 4 paths, interleaved`);
    for (let i = 0; i < SEQ_WARMUP; i++) await direct();
    await client.ask({ op: "seq", url: gatewayUrl, body, n: SEQ_WARMUP });
    await client.ask({ op: "seq", url: floorUrl, body, n: SEQ_WARMUP });
    await client.ask({ op: "seq", url: floorCallUrl, body, n: SEQ_WARMUP });
    const seq = {
      direct: [] as number[],
      gateway: [] as number[],
      floor: [] as number[],
      floorCall: [] as number[],
    };
    const cpu = { direct: [] as unknown[], gateway: [] as unknown[] };
    for (let b = 0; b < SEQ_BLOCKS; b++) {
      const d = await metered({ ...pids, client: undefined }, async () => {
        for (let i = 0; i < SEQ_BLOCK; i++) {
          const t0 = performance.now();
          await direct();
          seq.direct.push(performance.now() - t0);
        }
        return { requests: SEQ_BLOCK };
      });
      const g = await metered(pids, async () => {
        const r = await client.ask<{ samples: number[] }>({
          op: "seq",
          url: gatewayUrl,
          body,
          n: SEQ_BLOCK,
        });
        seq.gateway.push(...r.samples);
        return { requests: SEQ_BLOCK };
      });
      const f = await client.ask<{ samples: number[] }>({
        op: "seq",
        url: floorUrl,
        body,
        n: SEQ_BLOCK,
      });
      seq.floor.push(...f.samples);
      const fc = await client.ask<{ samples: number[] }>({
        op: "seq",
        url: floorCallUrl,
        body,
        n: SEQ_BLOCK,
      });
      seq.floorCall.push(...fc.samples);
      if (b === SEQ_BLOCKS - 1) {
        cpu.direct.push(d.cpu);
        cpu.gateway.push(g.cpu);
      }
    }
    const sDirect = usStats(seq.direct);
    const sGateway = usStats(seq.gateway);
    const sFloor = usStats(seq.floor);
    const sFloorCall = usStats(seq.floorCall);

    progress(
      `concurrent: ${CONCURRENCY} in flight, up to ${LOAD_MAX_REQUESTS} or ${LOAD_BUDGET_MS} ms`,
    );
    await client.ask({
      op: "load",
      url: gatewayUrl,
      body,
      concurrency: CONCURRENCY,
      max: LOAD_WARMUP,
      budgetMs: LOAD_BUDGET_MS,
    });
    const load = await metered(pids, async () => {
      const r = await client.ask<{ samples: number[]; seconds: number }>({
        op: "load",
        url: gatewayUrl,
        body,
        concurrency: CONCURRENCY,
        max: LOAD_MAX_REQUESTS,
        budgetMs: LOAD_BUDGET_MS,
      });
      return { ...r, requests: r.samples.length };
    });
    const connections = establishedTo(gateway.addr.port);
    const directLoad = await metered({ ...pids, client: undefined }, async () => {
      const samples: number[] = [];
      const deadline = performance.now() + LOAD_BUDGET_MS;
      let issued = 0;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (issued < LOAD_MAX_REQUESTS && performance.now() < deadline) {
          issued++;
          const s = performance.now();
          await direct();
          samples.push(performance.now() - s);
        }
      }));
      return { samples, seconds: (performance.now() - t0) / 1000, requests: samples.length };
    });
    const loadStats = (r: { samples: number[]; seconds: number }) => ({
      ...usStats(r.samples),
      seconds: round(r.seconds, 3),
      requests_per_s: Math.round(r.samples.length / r.seconds),
      stopped_by_time_budget: r.samples.length < LOAD_MAX_REQUESTS,
    });
    const added = round(sGateway.p50_us - sDirect.p50_us);
    const result = {
      benchmark: "plugsconc http gateway",
      machine: {
        date: new Date().toISOString(),
        deno: Deno.version.deno,
        os: `${Deno.build.os}-${Deno.build.arch}`,
        nproc: navigator.hardwareConcurrency,
        loadavg_at_start: loadavg(),
        request_signal_legacy_abort: legacy,
      },
      client: "a separate deno process, fetch with keep-alive",
      param_bytes: body.length,
      sequential_100b: {
        warmup_requests_per_path: SEQ_WARMUP,
        interleaved_blocks: SEQ_BLOCKS,
        direct_host_call: { ...sDirect, cpu: cpu.direct[0] },
        gateway: { ...sGateway, cpu: cpu.gateway[0] },
        http_floor: sFloor,
        http_floor_with_host_call: sFloorCall,
        gateway_added_p50_us: added,
        http_front_floor_added_p50_us: round(sFloorCall.p50_us - sDirect.p50_us),
        gateway_logic_p50_us: round(sGateway.p50_us - sFloorCall.p50_us),
      },
      concurrent_64: {
        concurrency: CONCURRENCY,
        gateway: {
          ...loadStats(load.result),
          server_side_connections: connections,
          cpu: load.cpu,
        },
        direct_host_call: { ...loadStats(directLoad.result), cpu: directLoad.cpu },
      },
      targets: {
        gateway_added_p50_us_max: TARGET_ADDED_P50_US,
        gateway_added_p50_ok: added <= TARGET_ADDED_P50_US,
      },
      total_seconds: 0,
    };
    await client.close();
    await gateway.close();
    await host.stop();
    result.total_seconds = round((performance.now() - started) / 1000, 1);
    console.log(JSON.stringify(result, null, 2));
  } finally {
    await client.close().catch(() => {});
    await reset();
  }
}

if (Deno.args.includes("--client")) await clientMain();
else await serverMain();
