/**
 * The cold-start part of `scripts/bench/rpc.ts`: a plugin started through the host, against
 * raw `deno run` of an empty script (to exit) and of a one-line script (to its first line),
 * with a breakdown of what the sandbox flags and `setpriv` add.
 *
 * @module
 */
import { join } from "node:path";
import type { PluginHost } from "../../src/host/mod.ts";
import {
  findDenoBinary,
  findSetpriv,
  PluginProcess,
  type PluginProcessOptions,
} from "../../src/runtime/mod.ts";
import { BENCH_PLUGIN as PLUGIN, pct, progressLog, round } from "./_common.ts";

const COLD_RUNS = 20;
const BREAKDOWN_RUNS = 10;
const progress = progressLog("rpc");

function msStats(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return {
    runs: s.length,
    median_ms: round(pct(s, 0.5), 2),
    p90_ms: round(pct(s, 0.9), 2),
    min_ms: round(s[0]!, 2),
  };
}

// ---- cold start ---------------------------------------------------------------------------

/** Spawns `bin args` with no stdin or stderr (and a clean `env` if given). */
function spawnQuiet(
  bin: string,
  args: string[],
  env: Record<string, string> | undefined,
  stdout: "null" | "piped",
): Deno.ChildProcess {
  return new Deno.Command(bin, {
    args,
    env,
    clearEnv: env !== undefined,
    stdin: "null",
    stdout,
    stderr: "null",
  }).spawn();
}

/** Spawn -> exit of `bin args`. */
async function spawnToExit(bin: string, args: string[], env?: Record<string, string>) {
  const t0 = performance.now();
  const child = spawnQuiet(bin, args, env, "null");
  const status = await child.status;
  const ms = performance.now() - t0;
  if (!status.success) throw new Error(`${bin} ${args.join(" ")} exited with ${status.code}`);
  return ms;
}

/** Spawn -> first complete stdout line of `bin args`. */
async function spawnToFirstLine(bin: string, args: string[], env?: Record<string, string>) {
  const t0 = performance.now();
  const child = spawnQuiet(bin, args, env, "piped");
  const reader = child.stdout.getReader();
  let ms = -1;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (ms < 0 && value.includes(0x0a)) ms = performance.now() - t0;
  }
  const status = await child.status;
  if (ms < 0 || !status.success) throw new Error(`${bin} ${args.join(" ")} printed no line`);
  return ms;
}

/** Cold start: the plugin through the host, against raw `deno run` to exit and to a first line. */
export async function coldStart(host: PluginHost, scripts: Scripts) {
  const config = host.config;
  const compiled = host.sandbox(PLUGIN)!;
  const plugin = compiled.plugin;
  // The same options as PluginHost#startPlugin passes to PluginProcess.start.
  const denoBin = findDenoBinary(config.runtime.deno);
  const setpriv = findSetpriv();
  const [bin, ...prefix] = setpriv ? [setpriv, "--pdeathsig", "KILL", "--", denoBin] : [denoBin];
  const override = config.plugins[PLUGIN];
  const options: PluginProcessOptions = {
    name: PLUGIN,
    bin: bin!,
    args: [...prefix, ...compiled.argv],
    env: compiled.env,
    cwd: plugin.dir,
    protocolVersion: plugin.manifest.handshake.protocol_version,
    startTimeoutMs: override?.start_timeout_ms ?? config.defaults.start_timeout_ms,
    maxLineBytes: config.defaults.max_line_bytes,
    stopGraceMs: config.defaults.stop_grace_ms,
  };
  const pluginStart = async () => {
    const t0 = performance.now();
    const proc = await PluginProcess.start(options);
    const ms = performance.now() - t0;
    await proc.stop();
    return ms;
  };

  // Interleaved, so a change of machine load during the run hits every series alike.
  progress(`cold start: ${COLD_RUNS} x (plugin start, raw deno run to exit, to first line)`);
  const pluginMs: number[] = [];
  const rawExit: number[] = [];
  const rawLine: number[] = [];
  const sandboxArgs = [...compiled.argv.slice(0, -1), scripts.oneLine];
  const flagsMs: number[] = [];
  const setprivMs: number[] = [];
  for (let i = -2; i < COLD_RUNS; i++) {
    const p = await pluginStart();
    const e = await spawnToExit(denoBin, ["run", scripts.empty]);
    const l = await spawnToFirstLine(denoBin, ["run", scripts.oneLine]);
    if (i >= 0) {
      pluginMs.push(p);
      rawExit.push(e);
      rawLine.push(l);
    }
    // Where a difference would come from: the sandbox's flags and env (DENO_DIR, import map,
    // v8 flags, deny-net) on the one-line script, then the same behind setpriv.
    if (i >= -1 && i < BREAKDOWN_RUNS) {
      const f = await spawnToFirstLine(denoBin, sandboxArgs, { ...compiled.env });
      const s = setpriv
        ? await spawnToFirstLine(setpriv, ["--pdeathsig", "KILL", "--", denoBin, ...sandboxArgs], {
          ...compiled.env,
        })
        : undefined;
      if (i >= 0) {
        flagsMs.push(f);
        if (s !== undefined) setprivMs.push(s);
      }
    }
  }

  const plugin_ = msStats(pluginMs);
  const exit_ = msStats(rawExit);
  const line_ = msStats(rawLine);
  return {
    plugin_spawn_to_ready: plugin_,
    raw_deno_run_empty_spawn_to_exit: exit_,
    raw_deno_run_spawn_to_first_line: line_,
    ratio_vs_first_line: round(plugin_.median_ms / line_.median_ms, 2),
    ratio_vs_exit: round(plugin_.median_ms / exit_.median_ms, 2),
    breakdown: {
      sandbox_flags_one_line_script: msStats(flagsMs),
      sandbox_flags_with_setpriv_one_line_script: setpriv ? msStats(setprivMs) : null,
    },
  };
}

/** The raw scripts the cold-start and raw-pipe measurements run. */
export interface Scripts {
  readonly empty: string;
  readonly oneLine: string;
  readonly echo: string;
}

/** Writes the raw scripts into `dir`. */
export async function writeScripts(dir: string): Promise<Scripts> {
  await Deno.mkdir(dir);
  const scripts = {
    empty: join(dir, "empty.ts"),
    oneLine: join(dir, "one_line.ts"),
    echo: join(dir, "echo.ts"),
  };
  await Deno.writeTextFile(scripts.empty, "");
  await Deno.writeTextFile(scripts.oneLine, 'console.log("ready");\n');
  await Deno.writeTextFile(
    scripts.echo,
    `const buf = new Uint8Array(65536);
for (;;) {
  const n = Deno.stdin.readSync(buf);
  if (n === null) break;
  let off = 0;
  while (off < n) off += Deno.stdout.writeSync(buf.subarray(off, n));
}
`,
  );
  return scripts;
}
