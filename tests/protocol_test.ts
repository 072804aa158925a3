/**
 * Wire-protocol tests with real plugin processes: bad stdout output is logged and survived,
 * an over-long line is refused and the plugin restarted, handshake failures fail only that
 * plugin, and a plugin run by hand refuses to start.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  HandshakeError,
  PluginCrashedError,
  PluginProtocolError,
  PluginUnavailableError,
} from "../src/runtime/mod.ts";
import {
  captureLogs,
  FIXTURE_PLUGINS,
  makeHome,
  pidAlive,
  ROOT,
  SAMPLE_PLUGINS,
  waitFor,
} from "./_helpers.ts";

const BEHAVE = join(FIXTURE_PLUGINS, "behave");
/** Hot reload is not under test here: the plugins folder is not watched. */
const NO_WATCH = { watcher: { enabled: false } };

/** Writes a plugin folder with `main.ts` and a minimal manifest into the home's plugins. */
async function writePlugin(
  pluginsDir: string,
  name: string,
  code: string,
  manifestExtra = "",
): Promise<void> {
  const dir = join(pluginsDir, name);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(join(dir, "main.ts"), code);
  await Deno.writeTextFile(
    join(dir, "manifest.yaml"),
    `plugin:\n  name: ${name}\n  version: 1.0.0\n  entrypoint: ./main.ts\n${manifestExtra}`,
  );
}

Deno.test("a plugin that prints garbage to stdout keeps working in the same process", async () => {
  await using logs = await captureLogs();
  await using home = await makeHome(NO_WATCH);
  await home.addPlugin(BEHAVE);
  await using host = await home.startHost();
  const pid = await host.call("behave", "pid");
  // Not JSON, half an object, invalid UTF-8, and JSON that is no JSON-RPC message.
  assert.equal(await host.call("behave", "garbage"), "ok");
  assert.deepEqual(await host.call("behave", "echo", { after: "garbage" }), { after: "garbage" });
  assert.equal(await host.call("behave", "pid"), pid);
  const info = host.plugins()[0]!;
  assert.equal(info.state, "ready");
  assert.equal(info.restarts, 0);
  assert.equal(host.supervisor("behave")!.process!.stdoutGarbage, 4);
  // Each bad line is a warning of the plugin's category, never an error.
  const warnings = logs.records.filter((r) =>
    r.category.join(".") === "plugsconc.plugin.behave" && r.level === "warning"
  );
  assert.ok(warnings.length >= 4, `warnings: ${JSON.stringify(warnings.map((r) => r.properties))}`);
  assert.deepEqual(
    [...new Set(warnings.map((r) => r.properties.code))].sort(),
    ["RPC_INVALID_JSON", "RPC_INVALID_MESSAGE", "RPC_INVALID_UTF8"],
  );
  assert.ok(warnings.every((r) => r.properties.plugin === "behave"));
});

Deno.test("a 20 MiB stdout line is refused with the max_line_bytes error and the host survives", async () => {
  await using home = await makeHome({
    ...NO_WATCH,
    defaults: { restart: { initial_backoff_ms: 50 } },
  });
  await home.addPlugin(BEHAVE);
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await using host = await home.startHost();
  const pid = await host.call("behave", "pid");
  const error = await host.call("behave", "huge", { mb: 20 }, { timeoutMs: 30_000 }).then(
    () => assert.fail("a 20 MiB line was accepted"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof PluginProtocolError, `got ${error}`);
  assert.equal(error.code, "PLUGIN_PROTOCOL");
  assert.equal(error.method, "huge");
  assert.match(error.message, /max_line_bytes \(16777216 bytes\)/);
  // The offending process is gone; the plugin comes back in a new one.
  assert.ok(await waitFor(() => !pidAlive(pid as number), 2000), "the old process is alive");
  assert.ok(
    await waitFor(() => host.plugins().find((p) => p.name === "behave")?.state === "ready", 15_000),
    `not restarted: ${JSON.stringify(host.plugins())}`,
  );
  assert.notEqual(await host.call("behave", "pid"), pid);
  assert.deepEqual(await host.call("behave", "echo", [1, 2]), [1, 2]);
  // Other plugins never noticed.
  assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" });
  assert.equal(host.plugins().find((p) => p.name === "cat")?.restarts, 0);
});

Deno.test("responses with unknown or repeated ids are ignored and the plugin keeps working", async () => {
  await using logs = await captureLogs();
  await using home = await makeHome(NO_WATCH);
  await writePlugin(
    home.pluginsDir,
    "rogue",
    `import { serve } from "plugsconc/sdk";
const raw = (o: unknown) => Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(o) + "\\n"));
serve({
  transport: "stdio",
  methods: {
    stray() {
      raw({ jsonrpc: "2.0", id: 987654, result: "nobody asked" });
      return "ok";
    },
    twice(_params: unknown, { id }: { id: unknown }) {
      raw({ jsonrpc: "2.0", id, result: "first" });
      return "second";
    },
    pid: () => Deno.pid,
  },
});
`,
  );
  await using host = await home.startHost();
  const pid = await host.call("rogue", "pid");
  assert.equal(await host.call("rogue", "stray"), "ok");
  // The first response wins; the second is for an id that is no longer pending.
  assert.equal(await host.call("rogue", "twice"), "first");
  assert.equal(await host.call("rogue", "pid"), pid);
  assert.equal(host.plugins()[0]?.restarts, 0);
  const unknown = logs.records.filter((r) => r.properties.code === "RPC_UNKNOWN_ID");
  assert.equal(unknown.length, 2, JSON.stringify(logs.records.map((r) => r.properties)));
  assert.ok(unknown.every((r) => r.level === "warning" && r.properties.plugin === "rogue"));
});

Deno.test("a plugin that dies in the middle of a line fails the call with PluginCrashedError", async () => {
  await using logs = await captureLogs();
  await using home = await makeHome({
    ...NO_WATCH,
    defaults: { restart: { initial_backoff_ms: 50 } },
  });
  await writePlugin(
    home.pluginsDir,
    "truncated",
    `import { serve } from "plugsconc/sdk";
serve({
  transport: "stdio",
  methods: {
    cut() {
      Deno.stdout.writeSync(new TextEncoder().encode('{"jsonrpc":"2.0","id":'));
      Deno.exit(0);
    },
    ping: () => "pong",
  },
});
`,
  );
  await using host = await home.startHost();
  const started = performance.now();
  await assert.rejects(host.call("truncated", "cut", undefined, { timeoutMs: 30_000 }), (e) => {
    assert.ok(e instanceof PluginCrashedError, `got ${e}`);
    assert.equal(e.exitCode, 0);
    return true;
  });
  assert.ok(performance.now() - started < 5000);
  // The partial line is reported, not parsed.
  assert.ok(
    logs.records.some((r) =>
      r.properties.code === "RPC_TRUNCATED" && r.properties.plugin === "truncated"
    ),
    JSON.stringify(logs.records.map((r) => r.properties)),
  );
  assert.ok(await waitFor(() => host.plugins()[0]?.state === "ready", 15_000));
  assert.equal(await host.call("truncated", "ping"), "pong");
});

Deno.test("handshake failures leave only that plugin failed, with a HandshakeError that says why", async () => {
  await using home = await makeHome({ ...NO_WATCH, plugins: { mute: { start_timeout_ms: 1000 } } });
  await home.addPlugin(BEHAVE);
  // The manifest claims a protocol the SDK does not speak.
  await home.addPlugin(BEHAVE, {
    as: "future",
    manifest: (text) => text + "handshake:\n  protocol_version: 2\n",
  });
  // Code that never calls serve(): one exits at once, one stays up and says nothing.
  await writePlugin(home.pluginsDir, "silent", `console.error("no serve() here");\n`);
  await writePlugin(
    home.pluginsDir,
    "mute",
    `console.error("pid=" + Deno.pid);\nsetInterval(() => {}, 1000);\n`,
  );
  await using host = await home.startHost();
  const byName = new Map(host.plugins().map((p) => [p.name, p]));
  assert.equal(byName.get("behave")?.state, "ready");
  /** The plugin is failed, calls to it are refused, and the reason is a HandshakeError. */
  const handshakeError = async (name: string): Promise<HandshakeError> => {
    assert.equal(byName.get(name)?.state, "failed", name);
    const error = await host.call(name, "echo", [1]).then(
      () => assert.fail(`${name} answered`),
      (e: unknown) => e,
    );
    assert.ok(error instanceof PluginUnavailableError, `${name}: ${error}`);
    const cause = error.cause;
    assert.ok(cause instanceof HandshakeError, `${name}: caused by ${cause}`);
    assert.equal(cause.code, "PLUGIN_HANDSHAKE");
    assert.match(cause.message, new RegExp(`^plugin ${name} failed the handshake: `));
    assert.equal(byName.get(name)?.error, cause.message);
    return cause;
  };

  const future = await handshakeError("future");
  // Both versions are named: what the plugin speaks and what the manifest declares.
  assert.match(future.message, /protocol 1\b/);
  assert.match(future.message, /protocol 2\b/);

  const silent = await handshakeError("silent");
  assert.match(silent.message, /exited before \$\/ready \(code 0\)/);
  assert.match(silent.message, /no serve\(\) here/);

  const mute = await handshakeError("mute");
  assert.match(mute.message, /no \$\/ready within 1000 ms \(start_timeout_ms\)/);
  // The process that never answered was killed, not left behind.
  const mutePid = Number(/pid=(\d+)/.exec(mute.message)?.[1]);
  assert.ok(mutePid > 0, mute.message);
  assert.ok(await waitFor(() => !pidAlive(mutePid), 2000), `pid ${mutePid} is alive`);

  assert.deepEqual(await host.call("behave", "echo", { still: "fine" }), { still: "fine" });
});

Deno.test("$/ready's name must be the manifest's; another version is only a warning", async () => {
  await using home = await makeHome(NO_WATCH);
  // cat's code announces "cat" 1.2.0: under another name it is refused, under another version
  // it starts with a warning.
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"), { as: "kitten" });
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"), {
    manifest: (text) => text.replace(/version: 1\.2\.0/, "version: 1.3.0"),
  });
  await using logs = await captureLogs();
  await using host = await home.startHost();
  const byName = new Map(host.plugins().map((p) => [p.name, p]));
  assert.equal(byName.get("kitten")?.state, "failed");
  assert.match(
    byName.get("kitten")?.error ?? "",
    /announced itself as "cat", but its manifest names it "kitten"/,
  );
  assert.equal(byName.get("cat")?.state, "ready");
  const warning = logs.records.find((r) => r.properties.announced === "1.2.0");
  assert.equal(warning?.level, "warning");
  assert.equal(warning?.properties.version, "1.3.0");
  assert.deepEqual(await host.call("cat", "speak"), { sound: "meow" });
});

Deno.test("a plugin run directly, without the host's cookie, prints one explaining line and exits 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "plugsconc-direct-" });
  try {
    const importMap = join(dir, "import_map.json");
    await Deno.writeTextFile(
      importMap,
      JSON.stringify({
        imports: { "plugsconc/sdk": pathToFileURL(join(ROOT, "src/sdk/mod.ts")).href },
      }),
    );
    const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
    delete env.PLUGSCONC_PLUGIN;
    const run = (flags: string[], extraEnv: Record<string, string> = {}) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-config",
          "--no-prompt",
          `--import-map=${importMap}`,
          ...flags,
          join(SAMPLE_PLUGINS, "cat/main.ts"),
        ],
        env: { ...env, ...extraEnv },
        clearEnv: true,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    const outcomes = [
      // No env permission at all, as when someone just runs the file.
      run(["--allow-read"]),
      // Env readable, but the cookie is missing or wrong.
      run(["--allow-read", "--allow-env"]),
      run(["--allow-read", "--allow-env"], { PLUGSCONC_PLUGIN: "guessed" }),
    ];
    for (const child of outcomes) {
      // stdin stays open: it must exit by itself rather than wait for input.
      const out = await child.output();
      await child.stdin.close();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 1, stderr);
      assert.equal(new TextDecoder().decode(out.stdout), "");
      const lines = stderr.split("\n").filter((l) => l.trim() !== "");
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0]!, /plugsconc plugin/);
      assert.match(lines[0]!, /started by the host/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
