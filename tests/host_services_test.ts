/**
 * What a running host wires together beside the plugins: the log store (`host.logs`), the job
 * pool (`host.pool`), and checksum verification of plugin code before every spawn.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig } from "../src/config/mod.ts";
import { PluginHost } from "../src/host/mod.ts";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { setupHostLogging } from "../src/logs/mod.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome, SAMPLE_PLUGINS } from "./_helpers.ts";

const NO_WATCH = { watcher: { enabled: false } };
const JOBS = new URL("../src/pool/_test_jobs.ts", import.meta.url).href;

Deno.test("host.logs.query() finds the records of a real plugin written through setupHostLogging()", async () => {
  await using home = await makeHome({
    ...NO_WATCH,
    logging: { level: "info", store: { flush_interval_ms: 20 } },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "behave"));
  const loaded = await loadConfig(home.configPath);
  {
    await using logging = await setupHostLogging(loaded.config, {
      write: () => {},
      isTerminal: false,
    });
    await using host = await PluginHost.start({ config: loaded, logStore: logging.store });
    assert.equal(host.logs, logging.store);
    await host.call("behave", "log", {
      level: "warning",
      message: "disk almost full",
      fields: { free: 3 },
    });
    // The plugin's record travels stdout -> host -> queue -> writer; wait until it is there.
    const deadline = Date.now() + 10_000;
    while (host.logs.query({ plugin: "behave", grep: "disk almost" }).length === 0) {
      assert.ok(Date.now() < deadline, "the plugin's record never reached the store");
      await logging.sink!.flush();
      await new Promise((r) => setTimeout(r, 20));
    }
    const [entry] = host.logs.query({ plugin: "behave", minLevel: "warning", grep: "disk" });
    assert.equal(entry?.message, "disk almost full");
    assert.equal(entry?.properties.free, 3);
    assert.equal(entry?.category, "plugsconc.plugin.behave");
  }
  // After the host and logging are gone, a new host reads the same database.
  await using again = await PluginHost.start({ config: loaded, only: [] });
  assert.ok(again.logs.query({ grep: "disk almost full" }).length === 1);
  assert.ok(again.logs.stats().rows > 0);
});

Deno.test("host.logs and host.pool say clearly when they are turned off", async () => {
  await using home = await makeHome({
    ...NO_WATCH,
    logging: { store: { enabled: false } },
    worker_pool: { enabled: false },
  });
  await using host = await PluginHost.start({ configPath: home.configPath });
  assert.throws(
    () => host.logs,
    (e: unknown) => (e as { code?: string }).code === "LOG_STORE_DISABLED",
  );
  assert.throws(() => host.pool, (e: unknown) => (e as { code?: string }).code === "POOL_DISABLED");
});

Deno.test("host.pool runs an application's jobs in Web Workers and stops with the host", async () => {
  await using home = await makeHome({ ...NO_WATCH, worker_pool: { max_workers: 2 } });
  const host = await PluginHost.start({ configPath: home.configPath });
  try {
    assert.ok(host.pool.maxWorkers >= 1 && host.pool.maxWorkers <= 2);
    const results = await Promise.all(
      [1, 2, 3, 4].map((n) => host.pool.submit({ module: JOBS, fn: "square", input: n })),
    );
    assert.deepEqual(results.map((r) => (r.value as { value: number }).value), [1, 4, 9, 16]);
    assert.equal(host.pool.metrics().succeeded, 4);
  } finally {
    await host.stop();
  }
  assert.equal(host.pool.state, "stopped");
});

Deno.test("a plugin whose code does not match its .sha256 file is refused before it spawns; a matching one starts", async () => {
  await using home = await makeHome(NO_WATCH);
  const good = await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  const bad = await home.addPlugin(join(SAMPLE_PLUGINS, "dog"));
  // Sign both with the CLI, then change dog's code after signing.
  for (const name of ["cat", "dog"]) {
    const io = memoryIo();
    assert.equal(await runCli(["--config", home.configPath, "plugins", "checksum", name], io), 0);
  }
  assert.match(
    await Deno.readTextFile(join(good, "main.ts.sha256")),
    /^[0-9a-f]{64} {2}main\.ts\n$/,
  );
  await Deno.writeTextFile(join(bad, "main.ts"), "\n// tampered\n", { append: true });
  await using host = await PluginHost.start({ configPath: home.configPath });
  const byName = Object.fromEntries(host.plugins().map((p) => [p.name, p]));
  assert.equal(byName.cat?.state, "ready");
  assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" });
  assert.equal(byName.dog?.state, "failed");
  assert.equal(byName.dog?.pid, undefined);
  assert.match(byName.dog?.error ?? "", /does not match its checksum/);
  await assert.rejects(
    host.call("dog", "speak", {}),
    (e: unknown) => (e as { code?: string }).code === "PLUGIN_UNAVAILABLE",
  );
});

Deno.test("security.require_checksums refuses an unsigned plugin with CHECKSUM_MISSING", async () => {
  await using home = await makeHome({ ...NO_WATCH, security: { require_checksums: true } });
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await using host = await PluginHost.start({ configPath: home.configPath });
  const [cat] = host.plugins();
  assert.equal(cat?.state, "failed");
  assert.match(cat?.error ?? "", /has no checksum and security\.require_checksums is on/);
});

Deno.test("a plugin with a missing dependency is failed; the host and the other plugins start", async () => {
  await using home = await makeHome(NO_WATCH);
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await home.addPlugin(join(SAMPLE_PLUGINS, "dog"), {
    manifest: (text) => text + "depends_on: [ghost]\n",
  });
  await using host = await PluginHost.start({ configPath: home.configPath });
  const byName = Object.fromEntries(host.plugins().map((p) => [p.name, p]));
  assert.equal(byName.cat?.state, "ready");
  assert.equal(byName.dog?.state, "failed");
  assert.match(byName.dog?.error ?? "", /dog depends on ghost, which is not available/);
  await assert.rejects(
    host.call("dog", "speak", {}),
    (e: unknown) => (e as { code?: string }).code === "PLUGIN_UNAVAILABLE",
  );
  assert.equal(host.health().plugins.dog?.status, "offline");
  assert.equal(host.health().status, "offline");
});

Deno.test("stop() stops dependents before what they depend on", async () => {
  await using home = await makeHome(NO_WATCH);
  await home.addPlugin(join(SAMPLE_PLUGINS, "dog"));
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"), {
    manifest: (text) => text + "depends_on: [dog]\n",
  });
  await using logs = await captureLogs();
  const host = await PluginHost.start({ configPath: home.configPath });
  assert.deepEqual(host.plugins().map((p) => p.state), ["ready", "ready"]);
  await host.stop();
  const stopped = logs.records
    .filter((r) => r.category.join(".") === "plugsconc.host" && r.properties.state === "stopped")
    .map((r) => r.properties.plugin);
  assert.deepEqual(stopped, ["cat", "dog"]);
});

Deno.test("call() refuses the protocol's own methods ($/health, $/shutdown, host/...)", async () => {
  await using home = await makeHome(NO_WATCH);
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await using host = await PluginHost.start({ configPath: home.configPath });
  for (const method of ["$/shutdown", "$/health", "host/process.exec"]) {
    await assert.rejects(
      host.call("cat", method, {}),
      (e: unknown) => (e as { code?: string }).code === "METHOD_NOT_FOUND",
      method,
    );
  }
  assert.equal(host.plugins()[0]!.state, "ready", "$/shutdown reached the plugin");
  assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" });
});
