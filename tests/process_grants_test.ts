/**
 * Process grants that would run arbitrary code, with a real plugin and a real host: launchers
 * under other names are refused at start under strict and warned under permissive, pseudo
 * paths are refused under both, and a command whose path names another file after the start
 * is refused at the spawn.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import { SandboxError } from "../src/sandbox/mod.ts";
import { PluginUnavailableError } from "../src/runtime/mod.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome, type TestHome } from "./_helpers.ts";

const RUNNER = join(FIXTURE_PLUGINS, "runner");

type Outcome = { result?: { stdout: string }; error?: { code: string; message: string } };

/** The runner plugin with exactly these exec grants. */
async function runnerWith(
  execs: { command: string; args?: string[] }[],
  config: Record<string, unknown> = {},
): Promise<TestHome> {
  const home = await makeHome({ watcher: { enabled: false }, ...config });
  await home.addPlugin(RUNNER, {
    manifest: () =>
      stringify({
        plugin: { name: "runner", version: "1.0.0", entrypoint: "./main.ts" },
        capabilities: { process: execs.map((e) => ({ exec: { args: [], ...e } })) },
      }),
  });
  return home;
}

/** Launchers that do not look like one, made in `dir` (outside the plugins and data folders). */
async function disguises(dir: string): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const link = join(dir, "list-files");
  await Deno.symlink("/usr/bin/bash", link);
  const copy = join(dir, "report");
  await Deno.copyFile("/usr/bin/perl", copy);
  const wrapper = join(dir, "safe-tool");
  await Deno.writeTextFile(wrapper, '#!/bin/sh\nexec "$@"\n');
  for (const f of [copy, wrapper]) await Deno.chmod(f, 0o755);
  return [link, copy, wrapper, "/usr/bin/ionice", "/usr/bin/taskset"];
}

async function startError(home: TestHome): Promise<SandboxError> {
  await using host = await home.startHost();
  const info = host.plugins().find((p) => p.name === "runner");
  assert.equal(info?.state, "failed");
  assert.equal(info?.pid, undefined, "no plugin process may have run");
  const e = await host.call("runner", "exec", { command: "/bin/echo" }).catch((e) => e);
  assert.ok(e instanceof PluginUnavailableError, String(e));
  assert.ok(e.cause instanceof SandboxError, String(e.cause));
  return e.cause;
}

Deno.test("launchers under other names are refused at start under strict, with the reason", async () => {
  const outside = await Deno.makeTempDir({ prefix: "plugsconc-bin-" });
  try {
    const commands = await disguises(outside);
    await using home = await runnerWith(
      commands.map((command) => ({ command, args: ["-c", "*"] })),
    );
    const error = await startError(home);
    assert.equal(error.code, "GRANT_REFUSED");
    assert.deepEqual(
      error.refusals.map((r) => r.at),
      commands.map((_, i) => `capabilities.process[${i}].exec`),
    );
    for (const r of error.refusals) {
      assert.match(r.reason, /Its arguments are code/);
      assert.match(r.reason, /wildcard argument/);
      assert.match(r.reason, /option -c may make/);
    }
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("under permissive the same launchers start with a warning each, and run", async () => {
  const outside = await Deno.makeTempDir({ prefix: "plugsconc-bin-" });
  try {
    const commands = await disguises(outside);
    await using home = await runnerWith(
      commands.map((command) => ({ command, args: ["-c", "echo $0"] })),
      { security: { policy: "permissive" } },
    );
    await using logs = await captureLogs();
    await using host = await home.startHost();
    assert.equal(host.plugins()[0]?.state, "ready");
    const warned = logs.records.filter((r) =>
      r.level === "warning" && /Its arguments are code/.test(String(r.properties.warning))
    );
    assert.equal(warned.length, commands.length);
    const ran = await host.call("runner", "exec", {
      command: commands[0],
      args: ["-c", "echo $0"],
    }) as Outcome;
    assert.equal(ran.error, undefined, JSON.stringify(ran.error));
    assert.match(ran.result!.stdout, /bash/);
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("/proc/self/exe and other pseudo paths are refused at start under strict and permissive", async () => {
  for (const policy of ["strict", "permissive"]) {
    await using home = await runnerWith([
      { command: "/proc/self/exe", args: ["eval", "1"] },
      { command: "/dev/stdin" },
    ], { security: { policy } });
    const error = await startError(home);
    assert.equal(error.refusals.length, 2, error.message);
    for (const r of error.refusals) assert.match(r.reason, /pseudo file system/);
  }
});

Deno.test("a command whose path names another file after the start is refused at the spawn", async () => {
  const outside = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-bin-" }));
  try {
    const tool = join(outside, "tool");
    await Deno.symlink("/bin/echo", tool);
    await using home = await runnerWith([{ command: tool, args: ["hi"] }]);
    await using host = await home.startHost();
    const first = await host.call("runner", "exec", { command: tool, args: ["hi"] }) as Outcome;
    assert.equal(first.result?.stdout, "hi\n");
    // Swapped for a shell: the same manifest line would now run `bash hi`.
    await Deno.remove(tool);
    await Deno.symlink("/usr/bin/bash", tool);
    const second = await host.call("runner", "exec", { command: tool, args: ["hi"] }) as Outcome;
    assert.equal(second.error?.code, "PROCESS_NOT_ALLOWED");
    assert.match(second.error!.message, /another file than \/usr\/bin\/echo/);
  } finally {
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("under strict, stdin goes only to commands the operator lists (an interpreter runs it as a script)", async () => {
  await using home = await runnerWith([{ command: "/bin/cat" }, { command: "/usr/bin/wc" }], {
    security: { process: { allow: [{ command: "/usr/bin/wc" }] } },
  });
  await using host = await home.startHost();
  const cat = await host.call("runner", "exec", {
    command: "/bin/cat",
    stdin: "print('plugin code')\n",
  }) as Outcome;
  assert.equal(cat.error?.code, "PROCESS_NOT_ALLOWED");
  assert.match(cat.error!.message, /may not give \/bin\/cat input on stdin/);
  const plain = await host.call("runner", "exec", { command: "/bin/cat" }) as Outcome;
  assert.equal(plain.error, undefined);
  const wc = await host.call("runner", "exec", {
    command: "/usr/bin/wc",
    stdin: "a b\n",
  }) as Outcome;
  assert.match(wc.result?.stdout ?? "", /1\s+2\s+4/);
});

Deno.test("each child starts in a new empty folder, removed when it ends: one child cannot leave a .curlrc for the next", async () => {
  await using home = await runnerWith([
    { command: "/bin/sh", args: ["-c", "pwd; echo $HOME; touch .curlrc; ls -A"] },
    { command: "/bin/ls", args: ["-A"] },
  ], {
    security: {
      process: {
        allow: [{ command: "/bin/sh", options: ["-c"] }, { command: "/bin/ls", options: ["-A"] }],
      },
    },
  });
  await using host = await home.startHost();
  const first = await host.call("runner", "exec", {
    command: "/bin/sh",
    args: ["-c", "pwd; echo $HOME; touch .curlrc; ls -A"],
  }) as Outcome;
  const [pwd, homeDir, listing] = first.result!.stdout.trim().split("\n");
  const base = join(home.dir, "data", "process", "runner");
  assert.ok(pwd!.startsWith(`${base}/child-`), pwd);
  assert.equal(homeDir, pwd);
  assert.equal(listing, ".curlrc");
  const second = await host.call("runner", "exec", { command: "/bin/ls", args: ["-A"] }) as Outcome;
  assert.equal(second.result?.stdout, "", "the second child saw the first one's files");
  assert.deepEqual([...Deno.readDirSync(base)], [], "the children's folders are removed");
});
