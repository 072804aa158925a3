/**
 * `host.on()`: plugin state changes and the outcomes of the watcher's change batches, with real
 * plugin processes and a real `Deno.watchFs`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { PluginHostEvents } from "../src/host/mod.ts";
import { PluginCrashedError } from "../src/runtime/mod.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome, SAMPLE_PLUGINS, waitFor } from "./_helpers.ts";

Deno.test("host.on('state') reports a crash and the restart; a throwing listener is logged, not fatal", async () => {
  await using home = await makeHome({
    watcher: { enabled: false },
    defaults: { restart: { initial_backoff_ms: 10 } },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "behave"));
  await using logs = await captureLogs();
  await using host = await home.startHost();
  const states: string[] = [];
  host.on("state", () => {
    throw new Error("a buggy listener");
  });
  const off = host.on("state", (e: PluginHostEvents["state"]) => {
    assert.equal(e.plugin, "behave");
    assert.equal(e.instance, 0);
    states.push(e.state);
  });
  await assert.rejects(host.call("behave", "crash", { code: 3 }), PluginCrashedError);
  assert.ok(await waitFor(() => states.at(-1) === "ready", 10_000), `states: ${states}`);
  assert.deepEqual(states, ["crashed", "backoff", "starting", "ready"]);
  assert.ok(
    logs.records.some((r) => String(r.properties.error).includes("a buggy listener")),
    "the throwing listener is logged",
  );
  off();
  await host.stop();
  assert.deepEqual(states, ["crashed", "backoff", "starting", "ready"], "no events after off()");
  assert.throws(() => host.on("nope" as "state", () => {}), RangeError);
});

Deno.test("host.on('change') reports started, reloaded, refused, held and stopped", async () => {
  await using home = await makeHome({ watcher: { enabled: true, reload: true, debounce_ms: 100 } });
  const cat = await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await using host = await home.startHost();
  const changes: PluginHostEvents["change"][] = [];
  host.on("change", (e) => void changes.push(e));
  const next = async (outcome: string) => {
    assert.ok(
      await waitFor(() => changes.some((c) => c.outcome === outcome), 15_000),
      `no ${outcome}: ${JSON.stringify(changes)}`,
    );
    return changes.find((c) => c.outcome === outcome)!;
  };
  await home.addPlugin(join(SAMPLE_PLUGINS, "dog"));
  assert.equal((await next("started")).plugin, "dog");
  const main = join(cat, "main.ts");
  await Deno.writeTextFile(main, (await Deno.readTextFile(main)).replace('"meow"', '"purr"'));
  const reloaded = await next("reloaded");
  assert.equal(reloaded.plugin, "cat");
  assert.deepEqual(reloaded.paths, [main]);
  const manifest = join(cat, "manifest.yaml");
  const good = await Deno.readTextFile(manifest);
  await Deno.writeTextFile(manifest, good + "capabilitees: {}\n");
  assert.match((await next("refused")).reason ?? "", /capabilitees/);
  await Deno.writeTextFile(manifest, good + "capabilities:\n  env: [TZ]\n");
  assert.equal((await next("held")).reason, "its manifest widens its capabilities: +env TZ");
  await Deno.remove(join(home.pluginsDir, "dog"), { recursive: true });
  assert.equal((await next("stopped")).plugin, "dog");
});
