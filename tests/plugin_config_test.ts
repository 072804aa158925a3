/**
 * Per-plugin config (issue 16, part 2) with real plugin processes: `plugins.<name>.config`
 * checked against the manifest's `config.schema`, received as `ctx.config` through
 * `$/configure`, secrets (`${VAR}` and `writeOnly` fields) never shown, and old plugins.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { PluginConfigError } from "../src/host/mod.ts";
import { Gateway } from "../src/server/mod.ts";
import { captureLogs, cliOk, FIXTURE_PLUGINS, makeHome, readUntil, waitFor } from "./_helpers.ts";

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
      // Not how long the secret is: that narrows it down.
      "plugins.configured.config.token: expected a string of at least 8 characters; fix it",
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
    assert.doesNotMatch(info.error!, /got \d/);
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
  const inspect = await cliOk([
    "--config",
    home.configPath,
    "plugins",
    "inspect",
    "configured",
    "--json",
  ]);
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
  const check = await cliOk(["--config", home.configPath, "config", "check", "--json"]);
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
    const call = await cliOk([
      "--config",
      home.configPath,
      "--verbose",
      "call",
      "configured",
      "describe",
    ]);
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

/** A manifest for the `configured` fixture with `schema` as its config.schema (YAML). */
function manifestWith(schema: string | undefined): () => string {
  return () =>
    "plugin: { name: configured, version: 1.0.0, entrypoint: ./main.ts }\n" +
    (schema === undefined ? "" : `config:\n  schema:\n${schema.replace(/^/gm, "    ")}\n`) +
    "methods:\n  describe: { idempotent: true }\n";
}

/** `plugins inspect configured --json` and `config check --json`, run as the CLI. */
async function showBoth(home: { configPath: string }) {
  const inspect = memoryIo();
  const inspectCode = await runCli(
    ["--config", home.configPath, "plugins", "inspect", "configured", "--json"],
    inspect,
  );
  const check = memoryIo();
  const checkCode = await runCli(["--config", home.configPath, "config", "check", "--json"], check);
  return {
    inspectCode,
    checkCode,
    inspect: inspect.stdout + inspect.stderr,
    check: check.stdout + check.stderr,
    shown: inspectCode === 0 ? JSON.parse(inspect.stdout).config : undefined,
    checked: checkCode === 0 ? JSON.parse(check.stdout) : undefined,
  };
}

Deno.test("inspect and config check mask a 40-level tree of writeOnly secrets at every level", async () => {
  let tree: Record<string, unknown> = { secret: "LEVEL40-SECRET" };
  for (let i = 39; i >= 1; i--) tree = { secret: `LEVEL${i}-SECRET`, child: tree };
  await using home = await makeHome({ plugins: { configured: { config: { tree } } } });
  await home.addPlugin(CONFIGURED, {
    manifest: manifestWith(
      "type: object\n$defs:\n  node:\n    type: object\n    properties:\n" +
        "      secret: { type: string, writeOnly: true }\n" +
        '      child: { $ref: "#/$defs/node" }\nproperties:\n  tree: { $ref: "#/$defs/node" }',
    ),
  });
  const r = await showBoth(home);
  assert.equal(r.inspectCode, 0, r.inspect);
  assert.equal(r.checkCode, 0, r.check);
  assert.doesNotMatch(r.inspect, /LEVEL\d+-SECRET/);
  assert.doesNotMatch(r.check, /LEVEL\d+-SECRET/);
  assert.match(r.inspect, /"config_problem": null/);
});

Deno.test("inspect and config check resolve $ref names as the validator does: tok%65n, 100%", async () => {
  for (const name of ["tok%65n", "100%"]) {
    await using home = await makeHome({
      plugins: { configured: { config: { token: "PERCENT-SECRET", user: "ann" } } },
    });
    await home.addPlugin(CONFIGURED, {
      manifest: manifestWith(
        `type: object\n$defs:\n  "${name}": { type: string, writeOnly: true }\n` +
          `properties:\n  token: { $ref: "#/$defs/${name}" }\n  user: { type: string }`,
      ),
    });
    const r = await showBoth(home);
    assert.equal(r.inspectCode, 0, r.inspect);
    assert.equal(r.checkCode, 0, r.check);
    assert.deepEqual(r.shown, { token: "***", user: "ann" });
    assert.deepEqual(r.checked.config.plugins.configured.config, { token: "***", user: "ann" });
    assert.doesNotMatch(r.inspect + r.check, /PERCENT-SECRET|internal error/);
  }
});

Deno.test("a config of the wrong shape, or without a schema, is shown with every value as ***", async () => {
  const config = { keys: ["WRONG-SHAPE-SECRET-1"], user: "ann-literal" };
  await using home = await makeHome({ plugins: { configured: { config } } });
  await home.addPlugin(CONFIGURED, {
    manifest: manifestWith(
      "type: object\nproperties:\n" +
        "  keys: { type: object, additionalProperties: { type: string, writeOnly: true } }",
    ),
  });
  const r = await showBoth(home);
  assert.equal(r.inspectCode, 0, r.inspect);
  assert.deepEqual(r.shown, { keys: ["***"], user: "***" });
  assert.match(r.inspect, /"config_problem": "plugins\.configured\.config\.keys: expected object/);
  assert.notEqual(r.checkCode, 0);
  assert.doesNotMatch(r.inspect + r.check, /WRONG-SHAPE-SECRET|ann-literal/);
  // No config.schema: nothing says which values are secret.
  await using bare = await makeHome({ plugins: { configured: { config } } });
  await bare.addPlugin(CONFIGURED, { manifest: manifestWith(undefined) });
  const b = await showBoth(bare);
  assert.equal(b.checkCode, 0, b.check);
  assert.deepEqual(b.shown, { keys: ["***"], user: "***" });
  assert.deepEqual(b.checked.config.plugins.configured.config, { keys: ["***"], user: "***" });
  assert.doesNotMatch(b.inspect + b.check, /WRONG-SHAPE-SECRET|ann-literal/);
});

Deno.test("config check masks the config of a plugin it could not read, and lists it as not checked", async () => {
  const config = { token: "LITERAL-TOKEN-VALUE", nested: { apiKey: "${PLUGSCONC_TEST_API_KEY}" } };
  await using home = await makeHome({
    plugins: { configured: { config }, ghost: { config: { a: { b: "GHOST-LITERAL" } } } },
  });
  await home.addPlugin(CONFIGURED, {
    manifest: (t) => t.replace("describe: { idempotent: true }", "describe: { idempotnt: true }"),
  });
  const r = await showBoth(home);
  assert.equal(r.checkCode, 0, r.check);
  assert.deepEqual(r.checked.config.plugins.configured.config, {
    token: "***",
    nested: { apiKey: "***" },
  });
  assert.deepEqual(r.checked.config.plugins.ghost.config, { a: { b: "***" } });
  assert.equal(r.checked.unchecked.length, 1);
  assert.equal(r.checked.unchecked[0].dir, join(home.dir, "plugins", "configured"));
  assert.equal(r.checked.unchecked[0].error.code, "MANIFEST_INVALID");
  assert.doesNotMatch(r.check, new RegExp(`LITERAL-TOKEN-VALUE|GHOST-LITERAL|${API_KEY}`));
  const human = memoryIo();
  assert.equal(await runCli(["--config", home.configPath, "config", "check"], human), 0);
  assert.match(human.stdout, /not checked: .*configured: .*idempotnt/);
  // A plugins folder that cannot be read (here: a file) is reported the same way.
  await Deno.remove(join(home.dir, "plugins"), { recursive: true });
  await Deno.writeTextFile(join(home.dir, "plugins"), "not a folder");
  const f = await showBoth(home);
  assert.equal(f.checkCode, 0, f.check);
  assert.deepEqual(f.checked.config.plugins.configured.config, {
    token: "***",
    nested: { apiKey: "***" },
  });
  assert.equal(f.checked.unchecked[0].dir, join(home.dir, "plugins"));
  assert.equal(f.checked.unchecked[0].error.code, "PLUGINS_DIR");
  assert.doesNotMatch(f.check, /LITERAL-TOKEN-VALUE|GHOST-LITERAL/);
});

Deno.test("an invalid writeOnly value is reported without its length, in every output", async () => {
  const short = "SHORT-SECRET";
  const bearer = "config-test-token-0123456789abcdef";
  await using home = await makeHome({ ...configFor({ token: short }), server: { token: bearer } });
  await home.addPlugin(CONFIGURED, {
    manifest: (t) => t.replace("minLength: 8", "minLength: 40"),
  });
  const r = await showBoth(home);
  const problem = "plugins.configured.config.token: expected a string of at least 40 characters";
  assert.match(r.inspect, new RegExp(problem));
  assert.match(r.check, new RegExp(problem));
  await using host = await home.startHost();
  const error = host.plugins()[0]!.error ?? "";
  assert.match(error, new RegExp(problem));
  await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
  const res = await fetch(`${gateway.url}/v1/plugins/configured`, {
    headers: { authorization: `Bearer ${bearer}` },
  });
  const api = await res.text();
  assert.match(api, new RegExp(problem));
  for (const text of [r.inspect, r.check, error, api]) {
    assert.doesNotMatch(text, new RegExp(`got ${short.length}|${short}`), text);
    assertNoSecret(text, "an invalid config's problem");
  }
  // ${VAR} values of a config that fails its schema are masked, with every other value.
  assert.deepEqual(r.shown, {
    endpoint: "***",
    token: "***",
    apiKey: "***",
    retries: "***",
    nested: { password: "***" },
  });
});
