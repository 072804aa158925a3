/**
 * The checksum covers code a plugin loads with a computed `import()` (not in its static module
 * graph): an edit of such a file refuses the plugin at the next start, fails `plugins verify`,
 * and stops the running version when the watcher sees it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome, pidAlive, waitFor } from "./_helpers.ts";

const NO_WATCH = { watcher: { enabled: false } };
const WATCH = { watcher: { enabled: true, reload: true, debounce_ms: 100 } };
const EVIL = 'export function greet() {\n  return "edited";\n}\n';

async function cli(configPath: string, ...args: string[]) {
  const io = memoryIo();
  const code = await runCli(["--config", configPath, ...args], io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

function codeOf(e: unknown): unknown {
  return (e as { code?: unknown })?.code;
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
  await assert.rejects(
    host.call("lazy", "greet", { module: "hello", name: "bo" }),
    (e: unknown) =>
      codeOf(e) === "PLUGIN_UNAVAILABLE" && codeOf((e as Error).cause) === "CHECKSUM_MISMATCH",
  );
  assert.ok(
    logs.records.some((r) =>
      r.level === "error" && r.properties.plugin === "lazy" &&
      r.properties.code === "CHECKSUM_MISMATCH"
    ),
    "logged as an error",
  );
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

Deno.test("a signed plugin's edit that comes with a held widening or a broken manifest stops it too; a broken manifest alone keeps it serving", async () => {
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
  assert.ok(
    await waitFor(
      () => changes.some((c) => c.plugin === "typo" && c.outcome === "refused"),
      15_000,
    ),
    JSON.stringify(changes),
  );
  assert.equal(state("typo")?.state, "ready");
  assert.equal(state("typo")?.pid, typoPid);
  assert.equal(await host.call("typo", "greet", { module: "hello", name: "x" }), "hello, x");
});
