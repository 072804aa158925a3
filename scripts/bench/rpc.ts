/**
 * End-to-end RPC benchmark of a real plugin process (issue 3, DESIGN §5). Prints one JSON
 * object on stdout; progress goes to stderr.
 *
 * - `cold_start`: spawn -> `$/ready` of the `bench` plugin (`plugins/bench/`) with the argv and
 *   env the host compiled for it, through `PluginProcess.start` with the options
 *   `PluginHost#startPlugin` uses (setpriv prefix included), interleaved with a raw `deno run`
 *   of an empty script (spawn -> exit) and of a script printing one line (spawn -> that line,
 *   the fairer comparison: the plugin is "up" when its first line arrives, not when it exits).
 *   `breakdown` runs the one-line script with the sandbox's flags and env, with and without
 *   setpriv, to show where a difference comes from.
 * - `sequential_100b`: one call at a time, ~100-byte params, through `host.call`,
 *   `PluginProcess.call` and `PluginProcess.request` (the bare JSON-RPC peer), so each
 *   layer's overhead shows; beside `raw_pipe_floor`, a Deno <-> Deno pipe ping-pong of a
 *   100-byte line without JSON (blocking reads in the child, BYOB reads in the parent), the
 *   least any stdio design can cost on this machine at this moment. The paths run in
 *   interleaved blocks so a change of machine load hits all of them alike.
 * - `throughput`: 64 calls in flight, 100 B and 64 KiB params, through `host.call` and the peer.
 * - `cpu` objects: CPU time per call of this process (the host) and the plugin, and how many
 *   CPUs everything else on the machine used meanwhile (`other_load_cpus`; Linux, from
 *   `/proc`): on a 2-core machine another busy process shows up directly in the latencies.
 *
 * - `peer_shapes`: hashicorp/go-plugin's own shapes through `host.call` (`_rpc_peer_shapes.ts`):
 *   `seq_100B`, `conc8_100B` (8 closed-loop callers), `seq_65536B`, `conc8_65536B`. With
 *   `--peer` (or whenever `../shared/peers/goplugin/run.sh` and Go are present; `--no-peer`
 *   skips it) the go-plugin peer (net/rpc) runs in the same run, in rounds interleaved with
 *   ours, and each shape gets its ratio against the peer's run of the same round.
 *
 * Usage: `deno run -A scripts/bench/rpc.ts [--peer|--no-peer] [--rounds N]
 * [--permission-audit on|off] [--schema on|off|compare] [--transport auto|stdio]` (about 20 s on 2 cores, plus about 15 s
 * per peer round). `--schema on` gives `echo` a params schema; `--schema compare` only runs
 * sequential calls to two bench plugins, with and without it, interleaved
 * (`_rpc_schema.ts`).
 * `--permission-audit` sets `security.permission_audit` (default: the config's default, on);
 * `scripts/bench/permission_audit.ts` compares the two interleaved.
 *
 * @module
 */
import { join } from "node:path";
import { findDenoBinary } from "../../src/runtime/mod.ts";
import { makeHome } from "../../tests/_helpers.ts";
import {
  BENCH_PLUGIN as PLUGIN,
  BENCH_PLUGIN_SOURCE,
  latencyUs,
  loadavg,
  machine,
  measureCpu,
  paramsOf,
  progressLog,
  readyPlugin,
  round,
} from "./_common.ts";
import { coldStart, writeScripts } from "./_rpc_cold_start.ts";
import { goPluginAvailable, peerShapes } from "./_rpc_peer_shapes.ts";
import { addTypedBench, schemaCost, withEchoSchema } from "./_rpc_schema.ts";

const SEQ_WARMUP = 1_000;
const SEQ_CALLS = 10_000;
const SEQ_BLOCKS = 10;
const IN_FLIGHT = 64;
/** Each throughput run stops issuing calls after this long (the whole run must stay < 2 min). */
const THROUGHPUT_BUDGET_MS = 20_000;

const TARGETS = {
  cold_start_ratio_max: 1.5,
  sequential_p50_us_max: 100,
  throughput_100b_calls_per_s_min: 100_000,
};

const progress = progressLog("rpc");

function usStats(samplesMs: Float64Array) {
  return { calls: samplesMs.length, ...latencyUs(samplesMs) };
}

// ---- CPU accounting (Linux /proc; null elsewhere) -------------------------------------------

/** Accumulates CPU use over one or more measured intervals of a call path. */
class CpuMeter {
  #host = 0;
  #plugin = 0;
  #others = 0;
  #wallNs = 0;
  #calls = 0;
  #ok = true;

  constructor(readonly pluginPid: number | undefined) {}

  /** Measures `fn`, which makes `calls` calls. */
  async measure<T>(calls: number, fn: () => Promise<T>): Promise<T> {
    const pids = [Deno.pid, ...(this.pluginPid ? [this.pluginPid] : [])];
    const { result, ns, othersNs, wallNs } = await measureCpu(pids, fn);
    const host = ns[0];
    const plugin = this.pluginPid ? ns[1] : 0;
    if (host === undefined || plugin === undefined || othersNs === undefined) {
      this.#ok = false;
    } else {
      this.#host += host;
      this.#plugin += plugin;
      this.#others += othersNs;
    }
    this.#wallNs += wallNs;
    this.#calls += calls;
    return result;
  }

  report() {
    if (!this.#ok || this.#calls === 0) return null;
    return {
      host_cpu_us_per_call: round(this.#host / this.#calls / 1000, 2),
      plugin_cpu_us_per_call: round(this.#plugin / this.#calls / 1000, 2),
      other_load_cpus: round(this.#others / this.#wallNs, 2),
    };
  }
}

// ---- round trips --------------------------------------------------------------------------

type Call = (params: unknown) => Promise<unknown>;

interface Path {
  readonly name: string;
  readonly call: Call;
  readonly params: unknown;
  readonly meter: CpuMeter;
  readonly samples: Float64Array;
}

/**
 * `SEQ_CALLS` sequential calls per path after `SEQ_WARMUP` each, in `SEQ_BLOCKS` rounds of
 * interleaved blocks.
 */
async function sequential(paths: Path[]) {
  for (const p of paths) for (let i = 0; i < SEQ_WARMUP; i++) await p.call(p.params);
  const block = SEQ_CALLS / SEQ_BLOCKS;
  for (let b = 0; b < SEQ_BLOCKS; b++) {
    for (const p of paths) {
      await p.meter.measure(block, async () => {
        for (let i = b * block; i < (b + 1) * block; i++) {
          const t0 = performance.now();
          await p.call(p.params);
          p.samples[i] = performance.now() - t0;
        }
      });
    }
  }
  return Object.fromEntries(
    paths.map((p) => [p.name, { ...usStats(p.samples), cpu: p.meter.report() }]),
  );
}

async function pipelined(
  call: Call,
  params: unknown,
  total: number,
  paramBytes: number,
  pluginPid: number,
) {
  // Warm-up: a tenth of the run, at most 5,000 calls.
  await runLanes(call, params, Math.min(5_000, Math.ceil(total / 10)), Infinity);
  const meter = new CpuMeter(pluginPid);
  let done = 0;
  let seconds = 0;
  await meter.measure(total, async () => {
    const t0 = performance.now();
    done = await runLanes(call, params, total, t0 + THROUGHPUT_BUDGET_MS);
    seconds = (performance.now() - t0) / 1000;
  });
  return {
    in_flight: IN_FLIGHT,
    param_bytes: paramBytes,
    calls: done,
    seconds: round(seconds, 3),
    calls_per_s: Math.round(done / seconds),
    mib_per_s_each_way: round((done * paramBytes) / seconds / (1024 * 1024)),
    stopped_by_time_budget: done < total,
    cpu: done === total ? meter.report() : null,
  };
}

async function runLanes(call: Call, params: unknown, total: number, deadline: number) {
  let issued = 0;
  let done = 0;
  const lane = async () => {
    while (issued < total && (done & 255 || performance.now() < deadline)) {
      issued++;
      await call(params);
      done++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  return done;
}

// ---- raw pipe floor -------------------------------------------------------------------------

/**
 * A child deno that echoes stdin to stdout with blocking reads, and a call that sends one
 * line and waits for it to come back (BYOB reads into a reused buffer).
 */
function rawPipe(denoBin: string, echoScript: string, lineBytes: number) {
  const child = new Deno.Command(denoBin, {
    args: ["run", "--no-config", echoScript],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader({ mode: "byob" });
  let buf = new Uint8Array(64 * 1024);
  const line = new TextEncoder().encode("x".repeat(lineBytes - 1) + "\n");
  const call: Call = async () => {
    await writer.write(line);
    let got = 0;
    while (got < line.length) {
      const { value, done } = await reader.read(buf);
      if (done) throw new Error("the echo child exited");
      got += value.length;
      buf = new Uint8Array(value.buffer);
    }
  };
  return {
    pid: child.pid,
    call,
    async stop() {
      await writer.close();
      await child.status;
    },
  };
}

// ---- main -----------------------------------------------------------------------------------

async function main() {
  const args = Deno.args;
  const withPeer = args.includes("--peer") || (!args.includes("--no-peer") && goPluginAvailable());
  const roundsAt = args.indexOf("--rounds");
  const rounds = roundsAt >= 0 ? Number(args[roundsAt + 1]) : 3;
  if (!(Number.isSafeInteger(rounds) && rounds >= 1)) {
    throw new RangeError(`--rounds must be a positive integer, got ${args[roundsAt + 1]}`);
  }
  if (args.includes("--peer") && !goPluginAvailable()) {
    throw new Error("--peer needs ../shared/peers/goplugin/run.sh and go (see its README)");
  }
  const auditAt = args.indexOf("--permission-audit");
  const auditArg = auditAt >= 0 ? args[auditAt + 1] : undefined;
  if (auditAt >= 0 && auditArg !== "on" && auditArg !== "off") {
    throw new RangeError(`--permission-audit must be on or off, got ${auditArg}`);
  }
  const schemaAt = args.indexOf("--schema");
  const schemaArg = schemaAt >= 0 ? args[schemaAt + 1] : "off";
  if (schemaArg !== "on" && schemaArg !== "off" && schemaArg !== "compare") {
    throw new RangeError(`--schema must be on, off or compare, got ${schemaArg}`);
  }
  const transportAt = args.indexOf("--transport");
  const transport = transportAt >= 0 ? args[transportAt + 1] : "auto";
  if (transport !== "auto" && transport !== "stdio") {
    throw new RangeError(`--transport must be auto or stdio, got ${transport}`);
  }
  const started = performance.now();
  const machineInfo = { ...(await machine()), loadavg_at_start: loadavg() };
  await using home = await makeHome({
    defaults: { transport },
    ...(auditArg === undefined ? {} : { security: { permission_audit: auditArg === "on" } }),
  });
  await home.addPlugin(BENCH_PLUGIN_SOURCE, schemaArg === "on" ? { manifest: withEchoSchema } : {});
  if (schemaArg === "compare") {
    await addTypedBench(home);
    await using host = await home.startHost();
    progress("params validation: schema on/off, interleaved");
    console.log(JSON.stringify({ machine: machineInfo, ...(await schemaCost(host)) }, null, 2));
    return;
  }
  const scripts = await writeScripts(join(home.dir, "raw"));
  progress("starting the host");
  await using host = await home.startHost();
  readyPlugin(host, PLUGIN);
  const proc = host.supervisor(PLUGIN)!.process!;

  const cold = await coldStart(host, scripts);

  const small = paramsOf(100);
  const big = paramsOf(64 * 1024);
  const viaHost: Call = (p) => host.call(PLUGIN, "echo", p);
  const viaProcess: Call = (p) => proc.call("echo", p);
  const viaPeer: Call = (p) => proc.request("echo", p);
  const check = await host.call(PLUGIN, "echo", small) as { text?: string };
  if (check?.text !== small.text) throw new Error("echo returned something else");

  progress(`sequential: ${SEQ_CALLS} calls x 4 paths, interleaved`);
  const pipe = rawPipe(findDenoBinary(host.config.runtime.deno), scripts.echo, 100);
  const path = (name: string, call: Call, pid: number): Path => ({
    name,
    call,
    params: small,
    meter: new CpuMeter(pid),
    samples: new Float64Array(SEQ_CALLS),
  });
  const seq = await sequential([
    path("host_call", viaHost, proc.pid),
    path("process_call", viaProcess, proc.pid),
    path("peer_request", viaPeer, proc.pid),
    path("raw_pipe_floor", pipe.call, pipe.pid),
  ]);
  await pipe.stop();

  progress(`throughput: ${IN_FLIGHT} in flight`);
  const tHost100 = await pipelined(viaHost, small, 100_000, 100, proc.pid);
  const tPeer100 = await pipelined(viaPeer, small, 100_000, 100, proc.pid);
  const tHost64k = await pipelined(viaHost, big, 5_000, 64 * 1024, proc.pid);
  const tPeer64k = await pipelined(viaPeer, big, 5_000, 64 * 1024, proc.pid);

  const shapes = await peerShapes(host, { withPeer, rounds, inFlight64: tHost100.calls_per_s });

  const seqHost = seq.host_call!;
  const result = {
    benchmark: "plugsconc rpc",
    machine: machineInfo,
    permission_audit: host.config.security.permission_audit,
    transport: proc.transport,
    echo_params_schema: schemaArg === "on",
    cold_start: cold,
    sequential_100b: {
      param_bytes: 100,
      warmup_calls_per_path: SEQ_WARMUP,
      interleaved_blocks: SEQ_BLOCKS,
      ...seq,
      host_overhead_p50_us: round(seqHost.p50_us - seq.peer_request!.p50_us),
      above_floor_p50_us: round(seqHost.p50_us - seq.raw_pipe_floor!.p50_us),
    },
    throughput: {
      host_call_100b: tHost100,
      peer_request_100b: tPeer100,
      host_call_64kib: tHost64k,
      peer_request_64kib: tPeer64k,
    },
    peer_shapes: { go_plugin: withPeer ? "netrpc, same run, interleaved" : null, ...shapes },
    targets: {
      ...TARGETS,
      cold_start_ratio_ok: cold.ratio_vs_first_line <= TARGETS.cold_start_ratio_max,
      sequential_p50_ok: seqHost.p50_us <= TARGETS.sequential_p50_us_max,
      throughput_100b_ok: tHost100.calls_per_s >= TARGETS.throughput_100b_calls_per_s_min,
    },
    total_seconds: 0,
  };
  await host.stop();
  result.total_seconds = round((performance.now() - started) / 1000, 1);
  console.log(JSON.stringify(result, null, 2));
}

await main();
