/**
 * Shared set-up for integration tests: a temp host folder with copies of fixture plugins,
 * a config file, and a started `PluginHost`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import { join, resolve } from "node:path";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { stringify } from "yaml";
import { PluginHost } from "../src/host/mod.ts";
import { type CliIo, memoryIo, runCli } from "../src/cli/mod.ts";

/** The repository root. */
export const ROOT: string = resolve(import.meta.dirname!, "..");
/** Fixture plugins. */
export const FIXTURE_PLUGINS: string = join(ROOT, "tests/fixtures/plugins");
/** Sample plugins. */
export const SAMPLE_PLUGINS: string = join(ROOT, "plugins");

/** A temp folder with `plugins/`, `data/` and `config.yaml`; removed on dispose. */
export interface TestHome extends AsyncDisposable {
  readonly dir: string;
  readonly pluginsDir: string;
  readonly configPath: string;
  /** Copies a plugin folder in, optionally replacing parts of its manifest. */
  addPlugin(
    source: string,
    options?: { as?: string; manifest?: (text: string) => string },
  ): Promise<string>;
  /** Writes `config.yaml` (merged over `dirs` pointing into this home). */
  writeConfig(config?: Record<string, unknown>): Promise<void>;
  /** Starts a host on this home's config. */
  startHost(options?: { only?: string[] }): Promise<PluginHost>;
  /**
   * Runs `main.ts run` on this home's config in its own process (stdout and stderr piped), as
   * a user would in another terminal.
   */
  spawnRun(): Deno.ChildProcess;
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    const src = join(from, e.name);
    const dst = join(to, e.name);
    if (e.isDirectory) await copyDir(src, dst);
    else if (e.isFile) await Deno.copyFile(src, dst);
  }
}

/**
 * Makes a test home. `config` is written as `config.yaml` with `dirs` set to the home.
 *
 * @example
 * ```ts
 * await using home = await makeHome();
 * await home.addPlugin(join(FIXTURE_PLUGINS, "behave"));
 * await using host = await home.startHost();
 * ```
 */
export async function makeHome(config: Record<string, unknown> = {}): Promise<TestHome> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-test-" }));
  const pluginsDir = join(dir, "plugins");
  const configPath = join(dir, "config.yaml");
  await Deno.mkdir(pluginsDir);
  const home: TestHome = {
    dir,
    pluginsDir,
    configPath,
    async addPlugin(source, options = {}) {
      const name = options.as ?? source.split("/").at(-1)!;
      const target = join(pluginsDir, name);
      await copyDir(source, target);
      const manifestPath = join(target, "manifest.yaml");
      let text = await Deno.readTextFile(manifestPath);
      if (options.as) text = text.replace(/^(\s*name:\s*).*$/m, `$1${options.as}`);
      if (options.manifest) text = options.manifest(text);
      await Deno.writeTextFile(manifestPath, text);
      return target;
    },
    async writeConfig(extra = {}) {
      const base = {
        dirs: { plugins: "./plugins", data: "./data" },
        logging: { level: "warning", format: "json" },
        defaults: { stop_grace_ms: 1000, start_timeout_ms: 15_000 },
      };
      await Deno.writeTextFile(configPath, stringify(deepMerge(base, extra)));
    },
    startHost(options = {}) {
      return PluginHost.start({ configPath, only: options.only });
    },
    spawnRun() {
      return new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(ROOT, "main.ts"), "--config", configPath, "run"],
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  await home.writeConfig(config);
  return home;
}

function deepMerge(
  a: Record<string, unknown>,
  b: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const av = out[k];
    out[k] = av !== null && typeof av === "object" && !Array.isArray(av) && v !== null &&
        typeof v === "object" &&
        !Array.isArray(v)
      ? deepMerge(av as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

/** Whether a process with `pid` exists (signal 0). */
export function pidAlive(pid: number): boolean {
  // kill(0 or negative) signals a process group, which is always "alive": a test that got no pid
  // must fail loudly instead of waiting on the test runner's own group.
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`pidAlive: not a process id: ${pid}`);
  try {
    Deno.kill(pid, "SIGCONT");
  } catch {
    return false;
  }
  // A zombie (dead, not yet reaped: an orphan where PID 1 does not reap) takes signals too.
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return Deno.build.os !== "linux";
  }
}

/** Polls `predicate` every 20 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return await predicate();
}

/**
 * Routes every `plugsconc.*` record (debug and up) into `records`, with implicit contexts on,
 * until disposed (which resets LogTape).
 *
 * @example
 * ```ts
 * await using logs = await captureLogs();
 * await host.call("behave", "log", { level: "info", message: "hi" });
 * logs.records.find((r) => r.properties.message === "hi");
 * ```
 */
export async function captureLogs(): Promise<{ records: LogRecord[] } & AsyncDisposable> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    contextLocalStorage: new AsyncLocalStorage(),
    sinks: { memory: (r) => void records.push(r) },
    loggers: [
      { category: ["plugsconc"], lowestLevel: "debug", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  return { records, [Symbol.asyncDispose]: () => reset() };
}

/** The text `run` prints once every plugin has started. */
export const RUN_READY = "Ctrl-C stops the host";

/**
 * Reads `reader` (a `run` child's stdout as text) until what it read includes `marker` or the
 * stream ends, and returns what it read, after `out`.
 */
export async function readUntil(
  reader: ReadableStreamDefaultReader<string>,
  marker = RUN_READY,
  out = "",
): Promise<string> {
  while (!out.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  return out;
}

/**
 * Runs the CLI in this process with `args`, asserts it exits 0 (its stderr as the message),
 * and returns what it printed.
 */
export async function cliOk(
  args: readonly string[],
): Promise<CliIo & { stdout: string; stderr: string }> {
  const io = memoryIo();
  assert.equal(await runCli(args, io), 0, io.stderr);
  return io;
}
