/**
 * Per-plugin config (issue 16, part 2) with real plugin processes: `plugins.<name>.config`
 * checked against the manifest's `config.schema`, received as `ctx.config` through
 * `$/configure`, secrets (`${VAR}` and `writeOnly` fields) never shown, and old plugins.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { PluginConfigError } from "../src/host/mod.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome, readUntil, waitFor } from "./_helpers.ts";

const CONFIGURED = join(FIXTURE_PLUGINS, "configured");
/** Written into config.yaml under a writeOnly field. */
const TOKEN = "wo-token-7f3a9c2e5b";
/** Under a nested writeOnly field. */
const PASSWORD = "wo-password-91d0c4";
/** In the environment, used as `${PLUGSCONC_TEST_API_KEY}`. */
const API_KEY = "env-apikey-3e8b61f0d2";
Deno.env.set("PLUGSCONC_TEST_API_KEY", API_KEY);

function configFor(extra: Record<string, unknown> = {}) {
  return {
    logging: { level: "debug" },
    plugins: {
      configured: {
        config: {
          endpoint: "https://api.example.com",
          token: TOKEN,
          apiKey: "${PLUGSCONC_TEST_API_KEY}",
          retries: 2,
          nested: { password: PASSWORD },
          ...extra,
        },
      },
    },
  };
}

function assertNoSecret(text: string, where: string): void {
  for (const secret of [TOKEN, PASSWORD, API_KEY]) {
    assert.ok(!text.includes(secret), `${where} shows a secret (${secret}):\n${text}`);
  }
}

Deno.test("ctx.config arrives, checked against the manifest's config.schema", async () => {
  await using home = await makeHome(configFor());
  await home.addPlugin(CONFIGURED);
  await using host = await home.startHost();
  assert.deepEqual(await host.call("configured", "describe"), {
    endpoint: "https://api.example.com",
    retries: 2,
    tokenLength: TOKEN.length,
    apiKeyLength: API_KEY.length,
    passwordLength: PASSWORD.length,
  });
});

Deno.test("a config failing the schema stops the plugin from starting, naming the field, never the value", async () => {
  const cases = [
    [
      { token: "short" },
      "plugins.configured.config.token: expected a string of at least 8 characters, got 5",
    ],
    [
      { retries: "hunter2-secret" },
      "plugins.configured.config.retries: expected integer, got string",
    ],
    [
      { endpoint: "ftp://secret-host" },
      "plugins.configured.config.endpoint: expected a string matching /^https?:\\/\\//, got string",
    ],
    [
      { extra: "zz-extra-value" },
      "plugins.configured.config.extra: property not allowed (additionalProperties is false)",
    ],
  ] as const;
  for (const [extra, problem] of cases) {
    await using home = await makeHome(configFor(extra));
    await home.addPlugin(CONFIGURED);
    await using host = await home.startHost();
    const info = host.plugins().find((p) => p.name === "configured")!;
    assert.equal(info.state, "failed");
    assert.ok(info.error?.startsWith(`plugin configured: invalid config: ${problem}`), info.error);
    for (const value of Object.values(extra)) assert.ok(!info.error!.includes(value), info.error);
    await assert.rejects(host.call("configured", "describe"), (e: unknown) => {
      assert.ok((e as Error).cause instanceof PluginConfigError, String(e));
      return true;
    });
  }
  // `config check` says the same.
  await using home = await makeHome(configFor({ token: "short" }));
  await home.addPlugin(CONFIGURED);
  const io = memoryIo();
  assert.notEqual(await runCli(["--config", home.configPath, "config", "check"], io), 0);
  assert.match(io.stderr, /plugins\.configured\.config\.token: expected a string of at least 8/);
  // A missing required field, with no config at all.
  await using bare = await makeHome();
  await bare.addPlugin(CONFIGURED);
  await using host = await bare.startHost();
  assert.match(
    host.plugins()[0]!.error ?? "",
    /plugins\.configured\.config\.endpoint: required property is missing/,
  );
});

Deno.test("secrets never appear in inspect --json, config check --json, call, run or the log store", async () => {
  await using home = await makeHome(configFor());
  await home.addPlugin(CONFIGURED);
  const inspect = memoryIo();
  assert.equal(
    await runCli(
      ["--config", home.configPath, "plugins", "inspect", "configured", "--json"],
      inspect,
    ),
    0,
    inspect.stderr,
  );
  const shown = JSON.parse(inspect.stdout);
  assert.deepEqual(shown.config, {
    endpoint: "https://api.example.com",
    token: "***",
    apiKey: "***",
    retries: 2,
    nested: { password: "***" },
  });
  assert.equal(shown.config_problem, null);
  assertNoSecret(inspect.stdout + inspect.stderr, "plugins inspect --json");
  const human = memoryIo();
  assert.equal(
    await runCli(["--config", home.configPath, "plugins", "inspect", "configured"], human),
    0,
  );
  assert.match(human.stdout, /config: +given, passes config\.schema/);
  assertNoSecret(human.stdout + human.stderr, "plugins inspect");
  const check = memoryIo();
  assert.equal(
    await runCli(["--config", home.configPath, "config", "check", "--json"], check),
    0,
    check.stderr,
  );
  assert.deepEqual(JSON.parse(check.stdout).config.plugins.configured.config.nested, {
    password: "***",
  });
  assertNoSecret(check.stdout + check.stderr, "config check --json");

  // `run` in its own process, with the log store, and `call` beside it.
  const child = home.spawnRun();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  try {
    out = await readUntil(reader);
    assert.match(out, /configured\s+\S+\s+ready/, out);
    const call = memoryIo();
    assert.equal(
      await runCli(
        ["--config", home.configPath, "--verbose", "call", "configured", "describe"],
        call,
      ),
      0,
      call.stderr,
    );
    assert.equal(JSON.parse(call.stdout).tokenLength, TOKEN.length);
    assertNoSecret(call.stdout + call.stderr, "call");
  } finally {
    child.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    reader.releaseLock();
    await child.status;
  }
  const log = await stderr;
  assert.match(log, /describing config|configured/, "the run logged something of the plugin");
  assertNoSecret(out + log, "run");
  // Every byte the log store and the audit trail wrote.
  let stored = "";
  for await (const e of Deno.readDir(join(home.dir, "data"))) {
    if (e.isFile) {
      stored += new TextDecoder().decode(await Deno.readFile(join(home.dir, "data", e.name)));
    }
  }
  assert.ok(stored.length > 0, "the log store was written");
  assertNoSecret(stored, "the data folder (log store, audit trail)");
});

Deno.test("an old plugin without the configure feature fails clearly when it has config, starts without", async () => {
  await using logs = await captureLogs();
  await using home = await makeHome({ plugins: { "wire-ndjson": { config: { a: 1 } } } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "wire_ndjson"), {
    // Only a result schema: the old SDK cannot check it, so it starts with a warning.
    manifest: (t) =>
      t.replace(
        "echo: { idempotent: true }",
        "echo: { idempotent: true, result: { type: integer } }",
      ),
  });
  {
    await using host = await home.startHost();
    const info = host.plugins()[0]!;
    assert.equal(info.state, "failed");
    assert.match(
      info.error ?? "",
      /cannot receive plugins\.wire-ndjson\.config: its \$\/ready does not list the "configure" feature/,
    );
  }
  await home.writeConfig();
  await using host = await home.startHost();
  assert.equal(host.plugins()[0]!.state, "ready");
  assert.deepEqual(await host.call("wire-ndjson", "echo", { x: 1 }), { x: 1 });
  assert.ok(
    await waitFor(
      () =>
        logs.records.some((r) =>
          r.level === "warning" && r.message.join("").includes("its results are not checked")
        ),
      2000,
    ),
  );
});

Deno.test("config without a config.schema reaches the plugin unchecked, with a warning", async () => {
  await using logs = await captureLogs();
  await using home = await makeHome({ plugins: { typed: { config: { any: ["yaml", 1] } } } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "typed"));
  await using host = await home.startHost();
  assert.deepEqual(await host.call("typed", "config"), { any: ["yaml", 1] });
  assert.ok(
    logs.records.some((r) =>
      r.level === "warning" && r.message.join("").includes("declares no config.schema")
    ),
  );
  // A plugin with neither config nor result schemas gets no $/configure: ctx.config is undefined.
  await using plain = await makeHome();
  await plain.addPlugin(join(FIXTURE_PLUGINS, "typed"), {
    manifest: (t) => t.slice(0, t.indexOf("\nmethods:")) + "\nmethods:\n  config: {}\n",
  });
  await using host2 = await plain.startHost();
  assert.equal(await host2.call("typed", "config"), null);
});

Deno.test("a reload whose new config.schema refuses the config is refused; the running version serves on", async () => {
  await using home = await makeHome({
    ...configFor(),
    watcher: { enabled: true, debounce_ms: 50 },
  });
  const dir = await home.addPlugin(CONFIGURED);
  await using host = await home.startHost();
  const changes: { outcome: string; reason?: string }[] = [];
  host.on("change", (e) => void changes.push(e));
  const pid = host.plugins()[0]!.pid;
  const manifest = join(dir, "manifest.yaml");
  const original = await Deno.readTextFile(manifest);
  await Deno.writeTextFile(
    manifest,
    original.replace(
      "retries: { type: integer, minimum: 0 }",
      "retries: { type: integer, minimum: 5 }",
    ),
  );
  assert.ok(await waitFor(() => changes.length > 0, 15_000), "no change outcome");
  assert.equal(changes[0]!.outcome, "refused", JSON.stringify(changes));
  assert.match(
    changes[0]!.reason ?? "",
    /plugins\.configured\.config\.retries: expected a number >= 5, got integer/,
  );
  assertNoSecret(changes[0]!.reason ?? "", "the refusal");
  assert.equal(host.plugins()[0]!.pid, pid);
  assert.equal((await host.call("configured", "describe") as { retries: number }).retries, 2);
  // A schema the config passes reloads it, with the config re-checked and sent again.
  await Deno.writeTextFile(manifest, original.replace("minimum: 0", "minimum: 1"));
  assert.ok(await waitFor(() => changes.length > 1, 15_000), "no second change outcome");
  assert.equal(changes[1]!.outcome, "reloaded", JSON.stringify(changes));
  assert.notEqual(host.plugins()[0]!.pid, pid);
  assert.equal(
    (await host.call("configured", "describe") as { tokenLength: number }).tokenLength,
    TOKEN.length,
  );
});
