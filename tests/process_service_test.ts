/**
 * The host's process service (`host/process.*`) with a real plugin: the plugin has no
 * `--allow-run`, asks the host through the SDK's `ctx.host.process`, and the host runs only
 * what the manifest grants, in the plugin's data folder, and kills the children (and their
 * groups) when the plugin stops or its call is cancelled.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { findSetsid, PluginCallError, PluginTimeoutError } from "../src/runtime/mod.ts";
import {
  captureLogs,
  FIXTURE_PLUGINS,
  makeHome,
  pidAlive,
  type TestHome,
  waitFor,
} from "./_helpers.ts";

const RUNNER = join(FIXTURE_PLUGINS, "runner");

/**
 * The runner's grants use wildcards and launchers (env, sh): under strict, only the host
 * operator can grant those, by listing the commands.
 */
const RUNNER_ALLOW = [
  { command: "/bin/echo" },
  { command: "/usr/bin/env" },
  { command: "/bin/sleep" },
  { command: "/bin/sh", options: ["-c"] },
];

async function homeWithRunner(
  manifest?: (text: string) => string,
): Promise<TestHome> {
  const home = await makeHome({
    watcher: { enabled: false },
    security: { process: { allow: RUNNER_ALLOW } },
  });
  await home.addPlugin(RUNNER, { manifest });
  return home;
}

type Outcome<T> = { result: T; error?: undefined } | {
  result?: undefined;
  error: { code: string; message: string };
};

function gone(pids: readonly number[]): Promise<boolean> {
  return waitFor(() => pids.every((pid) => !pidAlive(pid)), 2000);
}

Deno.test("a plugin runs a granted command through ctx.host.process, in an empty host folder with a clean env", async () => {
  await using home = await homeWithRunner();
  await using host = await home.startHost();
  const echo = await host.call("runner", "exec", {
    command: "/bin/echo",
    args: ["hello", "plugin"],
  }) as Outcome<{ stdout: string; code: number }>;
  assert.equal(echo.error, undefined);
  assert.equal(echo.result?.stdout, "hello plugin\n");
  assert.equal(echo.result?.code, 0);
  const env = await host.call("runner", "exec", { command: "/usr/bin/env" }) as Outcome<
    { stdout: string }
  >;
  // Not the data folder: programs read configuration (and so code) from HOME and the cwd.
  const childHome = join(home.dir, "data/process/runner");
  const [homeLine, pathLine, ...rest] = env.result!.stdout.trim().split("\n").sort();
  assert.ok(homeLine!.startsWith(`HOME=${childHome}/child-`), homeLine);
  assert.equal(pathLine, "PATH=/usr/local/bin:/usr/bin:/bin");
  assert.deepEqual(rest, []);
});

Deno.test("what the manifest does not grant is refused with PROCESS_NOT_ALLOWED, and logged", async () => {
  await using home = await homeWithRunner();
  await using host = await home.startHost();
  await using logs = await captureLogs();
  const refused = await host.call("runner", "exec", {
    command: "/bin/echo",
    args: ["hello", "--help"],
  }) as Outcome<unknown>;
  assert.equal(refused.error?.code, "PROCESS_NOT_ALLOWED");
  assert.match(refused.error!.message, /plugin runner may not run "\/bin\/echo" "hello" "--help"/);
  const sh = await host.call("runner", "exec", {
    command: "/bin/sh",
    args: ["-c", "id"],
  }) as Outcome<
    unknown
  >;
  assert.equal(sh.error?.code, "PROCESS_NOT_ALLOWED");
  const audit = logs.records.filter((r) =>
    r.category.join(".") === "plugsconc.process" && r.level === "warning"
  );
  assert.equal(audit.length, 2);
  assert.equal(audit[0]!.properties.plugin, "runner");
  assert.deepEqual(audit[1]!.properties.args, ["-c", "id"]);
  // Params the SDK would never send are refused by the host too.
  const raw = await host.call("runner", "raw", {
    method: "host/process.exec",
    params: { command: ["/bin/echo"] },
  }) as Outcome<unknown>;
  assert.equal(raw.error?.code, "PROCESS_INVALID_PARAMS");
  const unknown = await host.call("runner", "raw", {
    method: "host/process.fork",
    params: {},
  }) as Outcome<unknown>;
  assert.equal(unknown.error?.code, "RPC_REMOTE");
  assert.match(unknown.error!.message, /Method not found: "host\/process\.fork"/);
  // The plugin itself still cannot start a process.
  const self = await host.call("runner", "runSelf").catch((e) => e);
  assert.ok(self instanceof PluginCallError, String(self));
  assert.match(self.message, /NotCapable/);
});

Deno.test("a host.call timeout cancels the plugin's exec and the host kills the child", async () => {
  await using home = await homeWithRunner();
  await using host = await home.startHost();
  const pending = host.call("runner", "exec", { command: "/bin/sleep", args: ["30"] }, {
    timeoutMs: 5000,
  }).catch((e) => e);
  let pid = 0;
  assert.ok(
    await waitFor(async () => {
      const list = await host.call("runner", "list") as Outcome<{ pid: number }[]>;
      pid = list.result?.[0]?.pid ?? 0;
      return pid > 0;
    }, 5000),
    "the child never showed up in host/process.list",
  );
  assert.ok(pidAlive(pid));
  assert.ok((await pending) instanceof PluginTimeoutError);
  assert.ok(await gone([pid]), `child ${pid} outlived the cancelled call`);
});

Deno.test("children and their grandchildren die when the plugin stops", {
  ignore: findSetsid() === undefined,
}, async () => {
  await using home = await homeWithRunner();
  const host = await home.startHost();
  try {
    const spawned = await host.call("runner", "spawn", {
      command: "/bin/sh",
      args: ["-c", 'sleep 60 & echo $! > "$1"; wait', "sh", "grandchild.pid"],
    }) as Outcome<{ pid: number }>;
    const pid = spawned.result!.pid;
    const pidFile = join(home.dir, "data/plugins/runner/grandchild.pid");
    const readPid = () => Deno.readTextFile(pidFile).then(Number, () => 0);
    assert.ok(await waitFor(async () => (await readPid()) > 0, 5000), "no grandchild pid written");
    const grandchild = await readPid();
    assert.ok(pidAlive(pid) && pidAlive(grandchild));
    await host.stop();
    assert.ok(await gone([pid, grandchild]), `pids ${pid}, ${grandchild} outlived the plugin`);
  } finally {
    await host.stop();
  }
});

Deno.test("spawn, kill and wait round-trip; kill needs 'kill: [children]' in the manifest", async () => {
  {
    await using home = await homeWithRunner();
    await using host = await home.startHost();
    const { result } = await host.call("runner", "spawn", {
      command: "/bin/sleep",
      args: ["30"],
    }) as Outcome<{ id: number; pid: number }>;
    const killed = await host.call("runner", "kill", { id: result!.id }) as Outcome<
      { sent: boolean }
    >;
    assert.equal(killed.result?.sent, true);
    const waited = await host.call("runner", "wait", { id: result!.id }) as Outcome<
      { signal: string }
    >;
    assert.equal(waited.result?.signal, "SIGTERM");
    const stranger = await host.call("runner", "kill", { id: Deno.pid }) as Outcome<unknown>;
    assert.equal(stranger.error?.code, "PROCESS_NOT_FOUND");
  }
  {
    await using home = await homeWithRunner((text) => text.replace("    - kill: [children]\n", ""));
    await using host = await home.startHost();
    const { result } = await host.call("runner", "spawn", {
      command: "/bin/sleep",
      args: ["30"],
    }) as Outcome<{ id: number; pid: number }>;
    const refused = await host.call("runner", "kill", { id: result!.id }) as Outcome<unknown>;
    assert.equal(refused.error?.code, "PROCESS_NOT_ALLOWED");
    assert.ok(pidAlive(result!.pid));
  }
});
