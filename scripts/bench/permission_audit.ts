/**
 * Cost of the permission audit (issue 13): the same plugins with `security.permission_audit`
 * on and off, in interleaved rounds. Prints one JSON object on stdout; progress to stderr.
 *
 * - `cold_start`: `PluginHost.start({ only: [bench] })` until ready (compile, module-graph
 *   check, spawn, handshake; with the audit also `mkfifo` and the FIFO's open).
 * - `sequential_echo`: one `host.call("bench", "echo")` at a time, ~100-byte params: the
 *   plugin makes no permission check, so this is the reader's idle cost.
 * - `sequential_read`: one `readA` call at a time of `tests/fixtures/plugins/audit_reader`,
 *   which reads a granted file: one permission check (one audit line) per call.
 *
 * Usage: `deno run -A scripts/bench/permission_audit.ts [--rounds N] [--calls N]`.
 *
 * @module
 */
import { join } from "node:path";
import { stringify } from "yaml";
import { PluginHost } from "../../src/host/mod.ts";
import {
  BENCH_PLUGIN,
  BENCH_PLUGIN_SOURCE,
  latencyUs,
  machine,
  median,
  paramsOf,
  progressLog,
  round,
} from "./_common.ts";

const log = progressLog("permission_audit");
const arg = (name: string, dflt: number) => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
};
const ROUNDS = arg("--rounds", 5);
const CALLS = arg("--calls", 400);
const READER_SOURCE = join(import.meta.dirname!, "../../tests/fixtures/plugins/audit_reader");

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(join(from, e.name), join(to, e.name));
    else if (e.isFile) await Deno.copyFile(join(from, e.name), join(to, e.name));
  }
}

const home = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-bench-audit-" }));
try {
  await copyDir(BENCH_PLUGIN_SOURCE, join(home, "plugins", BENCH_PLUGIN));
  await copyDir(READER_SOURCE, join(home, "plugins", "audit-reader"));
  const configFor = async (audit: boolean) => {
    const path = join(home, `config_${audit ? "on" : "off"}.yaml`);
    await Deno.writeTextFile(
      path,
      stringify({
        dirs: { plugins: "./plugins", data: "./data" },
        logging: { level: "warning", store: { enabled: false } },
        watcher: { enabled: false },
        security: { permission_audit: audit },
      }),
    );
    return path;
  };
  const configs = { on: await configFor(true), off: await configFor(false) };
  const cold: Record<"on" | "off", number[]> = { on: [], off: [] };
  const echo: Record<"on" | "off", number[]> = { on: [], off: [] };
  const read: Record<"on" | "off", number[]> = { on: [], off: [] };
  const params = paramsOf(100);
  // A first start per mode fills the plugins' transpile caches; it is not measured.
  for (const mode of ["on", "off"] as const) {
    await (await PluginHost.start({
      configPath: configs[mode],
      only: [BENCH_PLUGIN, "audit-reader"],
    }))
      .stop();
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of (r % 2 === 0 ? ["on", "off"] : ["off", "on"]) as ("on" | "off")[]) {
      log(`round ${r + 1}/${ROUNDS}, audit ${mode}`);
      const t0 = performance.now();
      const host = await PluginHost.start({
        configPath: configs[mode],
        only: [BENCH_PLUGIN, "audit-reader"],
      });
      try {
        cold[mode].push(performance.now() - t0);
        for (let i = 0; i < 20; i++) await host.call(BENCH_PLUGIN, "echo", params); // warm-up
        for (let i = 0; i < CALLS; i++) {
          const t = performance.now();
          await host.call(BENCH_PLUGIN, "echo", params);
          echo[mode].push(performance.now() - t);
        }
        for (let i = 0; i < 20; i++) await host.call("audit-reader", "readA");
        for (let i = 0; i < CALLS; i++) {
          const t = performance.now();
          await host.call("audit-reader", "readA");
          read[mode].push(performance.now() - t);
        }
      } finally {
        await host.stop();
      }
    }
  }
  const ratio = (on: number, off: number) => round(on / off, 3);
  const coldOn = median(cold.on), coldOff = median(cold.off);
  const echoOn = latencyUs(echo.on), echoOff = latencyUs(echo.off);
  const readOn = latencyUs(read.on), readOff = latencyUs(read.off);
  console.log(JSON.stringify(
    {
      benchmark: "permission_audit",
      machine: await machine(),
      rounds: ROUNDS,
      calls_per_round: CALLS,
      cold_start_ms: {
        audit_on_median: round(coldOn),
        audit_off_median: round(coldOff),
        ratio: ratio(coldOn, coldOff),
      },
      sequential_echo: {
        audit_on: echoOn,
        audit_off: echoOff,
        p50_ratio: ratio(echoOn.p50_us, echoOff.p50_us),
      },
      sequential_read: {
        audit_on: readOn,
        audit_off: readOff,
        p50_ratio: ratio(readOn.p50_us, readOff.p50_us),
      },
    },
    null,
    2,
  ));
} finally {
  await Deno.remove(home, { recursive: true }).catch(() => {});
}
