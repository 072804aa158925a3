/**
 * The checksum covers code a plugin loads with a computed `import()` (not in its static module
 * graph, its own manifest.yaml included): an edit of such a file refuses the plugin at the next
 * start, fails `plugins verify`, and stops the running version when the watcher sees it. A
 * signed running plugin is not replaced by an unsigned version.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { LogRecord } from "@logtape/logtape";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import type { PluginHost } from "../src/host/mod.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome, pidAlive, waitFor } from "./_helpers.ts";

const NO_WATCH = { watcher: { enabled: false } };
const WATCH = { watcher: { enabled: true, reload: true, debounce_ms: 100 } };
const EVIL = 'export function greet() {\n  return "edited";\n}\n';

/**
 * A manifest for the `lazy` fixture that may read its whole folder (so it can `import()` its own
 * manifest) and that is valid JavaScript as well as YAML: block style, quoted scalars, and a
 * plain scalar whose continuation line carries a statement (`export const greet`).
 */
function polyglotManifest(greeting: string, checksum?: string): string {
  return [
    "plugin:",
    '  name: "lazy"',
    '  version: "1.0.0"',
    '  entrypoint: "./main.ts"',
    "about:",
    "  description: globalThis",
    `    ;export const greet=(n)=>${JSON.stringify(greeting)}+n`,
    "capabilities:",
    "  filesystem:",
    '    - {path: "./", permissions: ["read"], recursive: true}',
    "resources:",
    "  memory_mb: 64",
    "methods:",
    "  greet:",
    "    idempotent: true",
    ...(checksum === undefined ? [] : ["security:", `  checksum: "${checksum}"`]),
    "",
  ].join("\n");
}

/** The manifest, imported as JavaScript by the plugin (`lib/../manifest.yaml`). */
const FROM_MANIFEST = { module: "../manifest.yaml", name: "ann" };

async function cli(configPath: string, ...args: string[]) {
  const io = memoryIo();
  const code = await runCli(["--config", configPath, ...args], io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

function codeOf(e: unknown): unknown {
  return (e as { code?: unknown })?.code;
}

/**
 * The plugin was stopped for `code`: a call gets `PLUGIN_UNAVAILABLE` with that integrity error
 * as its cause, and the stop was logged as an error.
 */
async function assertStoppedWith(
  host: PluginHost,
  logs: { records: LogRecord[] },
  code: string,
  name: string,
): Promise<void> {
  await assert.rejects(
    host.call("lazy", "greet", { module: "hello", name }),
    (e: unknown) => codeOf(e) === "PLUGIN_UNAVAILABLE" && codeOf((e as Error).cause) === code,
  );
  assert.ok(
    logs.records.some((r) =>
      r.level === "error" && r.properties.plugin === "lazy" && r.properties.code === code
    ),
    "logged as an error",
  );
}

Deno.test("an edit of a file the plugin import()s at run time refuses it at the next start, and `plugins verify` reports a mismatch", async () => {
  await using home = await makeHome(NO_WATCH);
  const dir = await home.addPlugin(join(FIXTURE_PLUGINS, "lazy"));
  const signed = await cli(home.configPath, "plugins", "checksum", "lazy");
  assert.equal(signed.code, 0, signed.stderr);
  {
    await using host = await home.startHost();
    assert.equal(host.plugins()[0]?.state, "ready", host.plugins()[0]?.error);
    assert.equal(await host.call("lazy", "greet", { module: "hello", name: "ann" }), "hello, ann");
  }
  assert.equal((await cli(home.configPath, "plugins", "verify")).code, 0);

  await Deno.writeTextFile(join(dir, "lib/hello"), EVIL);
  await using host = await home.startHost();
  const [lazy] = host.plugins();
  assert.equal(lazy?.state, "failed");
  assert.equal(lazy?.pid, undefined);
  assert.match(lazy?.error ?? "", /plugin lazy: its code does not match its checksum/);
  await assert.rejects(
    host.call("lazy", "greet", { module: "hello", name: "ann" }),
    (e: unknown) =>
      codeOf(e) === "PLUGIN_UNAVAILABLE" &&
      codeOf((e as Error).cause) === "CHECKSUM_MISMATCH",
  );
  const verify = await cli(home.configPath, "plugins", "verify", "--json");
  assert.equal(verify.code, 1);
  const [row] = JSON.parse(verify.stdout).plugins;
  assert.equal(row.name, "lazy");
  assert.equal(row.status, "mismatch");
  assert.match(verify.stderr, /\[CHECKSUM_MISMATCH\]: plugin lazy/);
});

Deno.test("a signed plugin whose dynamically imported file is edited while it runs is stopped, not left serving; re-signing starts it again", async () => {
  await using home = await makeHome(WATCH);
  const dir = await home.addPlugin(join(FIXTURE_PLUGINS, "lazy"));
  assert.equal((await cli(home.configPath, "plugins", "checksum", "lazy")).code, 0);
  await using logs = await captureLogs();
  await using host = await home.startHost();
  const pid = host.plugins()[0]!.pid!;
  assert.equal(await host.call("lazy", "greet", { module: "hello", name: "bo" }), "hello, bo");
  const changes: { outcome: string; reason?: string }[] = [];
  host.on("change", (e) => changes.push(e));

  await Deno.writeTextFile(join(dir, "lib/hello"), EVIL);
  assert.ok(
    await waitFor(() => host.plugins()[0]?.state === "failed", 15_000),
    `still ${host.plugins()[0]?.state}`,
  );
  assert.ok(await waitFor(() => !pidAlive(pid), 5_000), "the old process is gone");
  assert.match(host.plugins()[0]?.error ?? "", /does not match its checksum/);
  await assertStoppedWith(host, logs, "CHECKSUM_MISMATCH", "bo");
  assert.ok(
    await waitFor(
      () => changes.some((c) => c.outcome === "stopped" && /checksum/.test(c.reason ?? "")),
      5_000,
    ),
    JSON.stringify(changes),
  );

  // An intended change: signing it again starts the new code.
  assert.equal((await cli(home.configPath, "plugins", "checksum", "lazy")).code, 0);
  assert.ok(
    await waitFor(() => host.plugins()[0]?.state === "ready", 15_000),
    `still ${host.plugins()[0]?.state}: ${host.plugins()[0]?.error}`,
  );
  assert.equal(
    await host.call("lazy", "greet", { module: "hello", name: "bo" }),
    "edited",
  );
});

Deno.test("an unsigned plugin whose dynamically imported file is edited reloads as before", async () => {
  await using home = await makeHome(WATCH);
  const dir = await home.addPlugin(join(FIXTURE_PLUGINS, "lazy"));
  await using host = await home.startHost();
  const pid = host.plugins()[0]!.pid!;
  assert.equal(await host.call("lazy", "greet", { module: "hello", name: "cy" }), "hello, cy");
  await Deno.writeTextFile(join(dir, "lib/hello"), EVIL);
  assert.ok(
    await waitFor(
      () => host.plugins()[0]?.state === "ready" && host.plugins()[0]?.pid !== pid,
      15_000,
    ),
    "a new process runs",
  );
  assert.equal(
    await host.call("lazy", "greet", { module: "hello", name: "cy" }),
    "edited",
  );
});

Deno.test("a signed plugin's edit that comes with a held widening or a broken manifest stops it too, and so does a broken manifest alone (the manifest is hashed)", async () => {
  await using home = await makeHome(WATCH);
  const dirs = {
    widened: await home.addPlugin(join(FIXTURE_PLUGINS, "lazy"), { as: "widened" }),
    broken: await home.addPlugin(join(FIXTURE_PLUGINS, "lazy"), { as: "broken" }),
    typo: await home.addPlugin(join(FIXTURE_PLUGINS, "lazy"), { as: "typo" }),
  };
  for (const name of Object.keys(dirs)) {
    assert.equal((await cli(home.configPath, "plugins", "checksum", name)).code, 0);
  }
  await using host = await home.startHost();
  const state = (name: string) => host.plugins().find((p) => p.name === name);
  const changes: { plugin?: string; outcome: string }[] = [];
  host.on("change", (e) => changes.push(e));
  const typoPid = state("typo")!.pid!;
  const edit = async (dir: string, manifest: (text: string) => string) => {
    await Deno.writeTextFile(join(dir, "lib/hello"), EVIL);
    const file = join(dir, "manifest.yaml");
    await Deno.writeTextFile(file, manifest(await Deno.readTextFile(file)));
  };
  // More memory is a widening: held under strict, and the old process would keep serving.
  await edit(dirs.widened, (t) => t.replace("memory_mb: 64", "memory_mb: 4096"));
  await edit(dirs.broken, (t) => t + "capabilitees: {}\n");
  const typo = join(dirs.typo, "manifest.yaml");
  await Deno.writeTextFile(typo, (await Deno.readTextFile(typo)) + "capabilitees: {}\n");
  for (const name of ["widened", "broken"]) {
    assert.ok(
      await waitFor(() => state(name)?.state === "failed", 15_000),
      `${name} is ${state(name)?.state}: ${JSON.stringify(changes)}`,
    );
    assert.match(state(name)?.error ?? "", /its folder changed since its code was verified/);
    await assert.rejects(
      host.call(name, "greet", { module: "hello", name: "x" }),
      (e: unknown) => codeOf((e as Error).cause) === "CHECKSUM_MISMATCH",
    );
  }
  // The manifest is hashed (a plugin may import() it as code): editing it alone stops too.
  assert.ok(
    await waitFor(() => state("typo")?.state === "failed", 15_000),
    `typo is ${state("typo")?.state}: ${JSON.stringify(changes)}`,
  );
  assert.match(state("typo")?.error ?? "", /its folder changed since its code was verified/);
  assert.ok(await waitFor(() => !pidAlive(typoPid), 5_000), "the old process is gone");
});

Deno.test("code in a signed plugin's manifest.yaml, imported by the plugin, is hashed: an edit of it fails `plugins verify` and refuses the next start", async () => {
  await using home = await makeHome(NO_WATCH);
  const dir = await home.addPlugin(join(FIXTURE_PLUGINS, "lazy"));
  const manifest = join(dir, "manifest.yaml");
  await Deno.writeTextFile(manifest, polyglotManifest("signed code, "));
  const signed = await cli(home.configPath, "plugins", "checksum", "lazy");
  assert.equal(signed.code, 0, signed.stderr);
  {
    await using host = await home.startHost();
    assert.equal(host.plugins()[0]?.state, "ready", host.plugins()[0]?.error);
    assert.equal(await host.call("lazy", "greet", FROM_MANIFEST), "signed code, ann");
  }
  assert.equal((await cli(home.configPath, "plugins", "verify")).code, 0);

  // Only the code in the manifest changes; it is still a valid manifest with the same grants.
  await Deno.writeTextFile(manifest, polyglotManifest("UNHASHED CODE, "));
  const verify = await cli(home.configPath, "plugins", "verify", "--json");
  assert.equal(verify.code, 1, verify.stdout);
  assert.equal(JSON.parse(verify.stdout).plugins[0].status, "mismatch");
  await using host = await home.startHost();
  const [lazy] = host.plugins();
  assert.equal(lazy?.state, "failed");
  assert.equal(lazy?.pid, undefined);
  assert.match(lazy?.error ?? "", /plugin lazy: its code does not match its checksum/);
  await assert.rejects(
    host.call("lazy", "greet", FROM_MANIFEST),
    (e: unknown) =>
      codeOf(e) === "PLUGIN_UNAVAILABLE" && codeOf((e as Error).cause) === "CHECKSUM_MISMATCH",
  );
});

Deno.test("signed by security.checksum: only the value is left out of the hash; another value, or an edit of the manifest's code, is a mismatch", async () => {
  await using home = await makeHome(NO_WATCH);
  const dir = await home.addPlugin(join(FIXTURE_PLUGINS, "lazy"));
  const manifest = join(dir, "manifest.yaml");
  // A placeholder value first: the value counts as zeros, so the checksum printed then holds.
  await Deno.writeTextFile(manifest, polyglotManifest("signed code, ", `sha256:${"0".repeat(64)}`));
  const dry = await cli(home.configPath, "plugins", "checksum", "lazy", "--dry-run", "--json");
  assert.equal(dry.code, 0, dry.stderr);
  const hex: string = JSON.parse(dry.stdout).sha256;
  await Deno.writeTextFile(manifest, polyglotManifest("signed code, ", `sha256:${hex}`));
  const ok = await cli(home.configPath, "plugins", "verify", "--json");
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.deepEqual(
    JSON.parse(ok.stdout).plugins[0].expected.map((e: { source: string }) => e.source),
    ["manifest"],
  );
  {
    await using host = await home.startHost();
    assert.equal(host.plugins()[0]?.state, "ready", host.plugins()[0]?.error);
    assert.equal(await host.call("lazy", "greet", FROM_MANIFEST), "signed code, ann");
  }
  for (
    const text of [
      polyglotManifest("signed code, ", `sha256:${"1".repeat(64)}`),
      polyglotManifest("UNHASHED CODE, ", `sha256:${hex}`),
    ]
  ) {
    await Deno.writeTextFile(manifest, text);
    const verify = await cli(home.configPath, "plugins", "verify", "--json");
    assert.equal(verify.code, 1, verify.stdout);
    assert.equal(JSON.parse(verify.stdout).plugins[0].status, "mismatch");
    await using host = await home.startHost();
    assert.equal(host.plugins()[0]?.state, "failed");
    assert.match(host.plugins()[0]?.error ?? "", /security\.checksum in .* expects/);
  }
});

Deno.test("deleting a running signed plugin's .sha256 file along with an edit stops it with CHECKSUM_MISSING instead of reloading it unsigned", async () => {
  await using home = await makeHome(WATCH);
  const dir = await home.addPlugin(join(FIXTURE_PLUGINS, "lazy"));
  assert.equal((await cli(home.configPath, "plugins", "checksum", "lazy")).code, 0);
  await using logs = await captureLogs();
  await using host = await home.startHost();
  const pid = host.plugins()[0]!.pid!;
  assert.equal(await host.call("lazy", "greet", { module: "hello", name: "di" }), "hello, di");
  const changes: { outcome: string; reason?: string }[] = [];
  host.on("change", (e) => changes.push(e));

  await Deno.remove(join(dir, "main.ts.sha256"));
  await Deno.writeTextFile(join(dir, "lib/hello"), EVIL);
  assert.ok(
    await waitFor(() => host.plugins()[0]?.state === "failed", 15_000),
    `still ${host.plugins()[0]?.state}: ${JSON.stringify(changes)}`,
  );
  assert.ok(await waitFor(() => !pidAlive(pid), 5_000), "the old process is gone");
  assert.match(
    host.plugins()[0]?.error ?? "",
    /the running version was signed .* and the new version is not .*re-sign it .*restart the host/is,
  );
  await assertStoppedWith(host, logs, "CHECKSUM_MISSING", "di");
  assert.ok(
    await waitFor(() => changes.some((c) => c.outcome === "stopped"), 5_000),
    JSON.stringify(changes),
  );
  assert.ok(!changes.some((c) => c.outcome === "reloaded"), JSON.stringify(changes));

  // Signing the new version starts it.
  assert.equal((await cli(home.configPath, "plugins", "checksum", "lazy")).code, 0);
  assert.ok(
    await waitFor(() => host.plugins()[0]?.state === "ready", 15_000),
    `still ${host.plugins()[0]?.state}: ${host.plugins()[0]?.error}`,
  );
  assert.equal(await host.call("lazy", "greet", { module: "hello", name: "di" }), "edited");
});
