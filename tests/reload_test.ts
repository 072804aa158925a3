import assert from "node:assert/strict";
import { join } from "node:path";
import { captureLogs, makeHome, pidAlive, SAMPLE_PLUGINS, waitFor } from "./_helpers.ts";

const WATCH = { watcher: { enabled: true, reload: true, debounce_ms: 100 } };

Deno.test("editing a plugin's code reloads it: new process, new behaviour, old one stopped", async () => {
  await using home = await makeHome(WATCH);
  const dir = await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await using host = await home.startHost();
  assert.equal(host.watchedFolder, home.pluginsDir);
  const oldPid = host.plugins()[0]!.pid!;
  assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" });
  const main = join(dir, "main.ts");
  await Deno.writeTextFile(main, (await Deno.readTextFile(main)).replace('"meow"', '"purr"'));
  const reloaded = await waitFor(async () => {
    const r = await host.call("cat", "speak", {}) as { sound: string };
    return r.sound === "purr";
  }, 15_000);
  assert.ok(reloaded, "cat answers with the new code");
  const info = host.plugins()[0]!;
  assert.notEqual(info.pid, oldPid);
  assert.ok(await waitFor(() => !pidAlive(oldPid), 5_000), "the old process is gone");
});

Deno.test("a broken edit keeps the old version serving; every call succeeds throughout", async () => {
  await using home = await makeHome(WATCH);
  const dir = await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await using logs = await captureLogs();
  await using host = await home.startHost();
  const pid = host.plugins()[0]!.pid;
  const failures: unknown[] = [];
  let calls = 0;
  let stop = false;
  const caller = (async () => {
    while (!stop) {
      try {
        await host.call("cat", "speak", {});
        calls++;
      } catch (e) {
        failures.push(e);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  // A manifest typo, then code that imports a file outside the plugin folder.
  const manifest = join(dir, "manifest.yaml");
  const good = await Deno.readTextFile(manifest);
  await Deno.writeTextFile(manifest, good + "capabilitees: {}\n");
  await new Promise((r) => setTimeout(r, 800));
  await Deno.writeTextFile(manifest, good);
  const secret = join(home.dir, "secret.txt");
  await Deno.writeTextFile(secret, "s3cret");
  await Deno.writeTextFile(
    join(dir, "main.ts"),
    `import secret from ${JSON.stringify(secret)} with { type: "text" };\n` +
      `import { serve } from "plugsconc/sdk";\nserve({ methods: { speak: () => ({ sound: secret }) } });\n`,
  );
  await new Promise((r) => setTimeout(r, 1500));
  stop = true;
  await caller;
  assert.deepEqual(failures, []);
  assert.ok(calls > 20, `only ${calls} calls`);
  assert.equal(host.plugins()[0]!.pid, pid, "the old process still serves");
  assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" });
  // Both bad changes were seen and refused, each logged with why and the paths.
  const refusals = logs.records.filter((r) => r.level === "error").map((r) => r.properties);
  assert.ok(
    refusals.some((p) => /capabilitees/.test(String(p.error)) && Array.isArray(p.paths)),
    JSON.stringify(refusals),
  );
  assert.ok(
    refusals.some((p) =>
      /MODULE_OUTSIDE_PLUGIN|outside/.test(String(p.error)) && p.plugin === "cat"
    ),
    JSON.stringify(refusals),
  );
});

Deno.test("a new plugin folder is picked up and started; a removed one is stopped", async () => {
  await using home = await makeHome(WATCH);
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await using host = await home.startHost();
  assert.deepEqual(host.plugins().map((p) => p.name), ["cat"]);
  await home.addPlugin(join(SAMPLE_PLUGINS, "dog"));
  assert.ok(
    await waitFor(
      () => host.plugins().some((p) => p.name === "dog" && p.state === "ready"),
      15_000,
    ),
    "dog started",
  );
  assert.deepEqual(await host.call("dog", "speak", { loud: true }), { sound: "WOOF!" });
  const dogPid = host.plugins().find((p) => p.name === "dog")!.pid!;
  await Deno.remove(join(home.pluginsDir, "dog"), { recursive: true });
  assert.ok(
    await waitFor(() => !host.plugins().some((p) => p.name === "dog"), 10_000),
    "dog removed",
  );
  assert.ok(await waitFor(() => !pidAlive(dogPid), 5_000), "dog's process is gone");
  await assert.rejects(
    host.call("dog", "speak", {}),
    (e: unknown) => (e as { code?: string }).code === "PLUGIN_NOT_FOUND",
  );
  assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" }, "cat is untouched");
});

Deno.test("a reload that widens capabilities is held under strict (logged with the diff) and applied under permissive", async () => {
  const widen = (text: string) =>
    text + "capabilities:\n  network:\n    egress: [{ hosts: [api.example.com], ports: [443] }]\n";
  for (const policy of ["strict", "permissive"] as const) {
    await using home = await makeHome({ ...WATCH, security: { policy } });
    const dir = await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
    await using logs = await captureLogs();
    await using host = await home.startHost();
    const pid = host.plugins()[0]!.pid!;
    const manifest = join(dir, "manifest.yaml");
    const original = await Deno.readTextFile(manifest);
    const main = join(dir, "main.ts");
    const code = await Deno.readTextFile(main);
    // The grant, and new code that needs it (the manifest first: if the two writes land in two
    // batches, the code alone must not reload before the manifest is seen).
    await Deno.writeTextFile(manifest, widen(original));
    await Deno.writeTextFile(main, code.replace('"meow"', '"purr"'));
    const widened = () =>
      logs.records.find((r) => r.properties.diff === "+net api.example.com:443");
    assert.ok(await waitFor(() => widened() !== undefined, 15_000), `${policy}: nothing logged`);
    assert.equal(widened()!.level, "warning");
    if (policy === "strict") {
      assert.match(String(widened()!.message.join("")), /reload of cat held/);
      // Give a wrongly applied reload the time to happen: the old process keeps serving.
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(host.plugins()[0]!.pid, pid);
      assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" });
      // Reverted, the manifest grants nothing new: the code change reloads.
      await Deno.writeTextFile(manifest, original);
    }
    assert.ok(
      await waitFor(async () => {
        const r = await host.call("cat", "speak", {}) as { sound: string };
        return r.sound === "purr";
      }, 15_000),
      `${policy}: the new code never served`,
    );
    assert.notEqual(host.plugins()[0]!.pid, pid);
  }
});

Deno.test("under strict, removing and re-adding a plugin, a bigger heap or a rename cannot get around the hold", async () => {
  await using home = await makeHome(WATCH);
  const dir = await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await using host = await home.startHost();
  const changes: { outcome: string; plugin?: string; reason?: string }[] = [];
  host.on("change", (e) => void changes.push(e));
  const waitOutcome = async (outcome: string, n: number) => {
    assert.ok(
      await waitFor(() => changes.filter((c) => c.outcome === outcome).length >= n, 15_000),
      `no ${outcome} #${n}: ${JSON.stringify(changes)}`,
    );
    return changes.filter((c) => c.outcome === outcome)[n - 1]!;
  };
  const manifest = join(dir, "manifest.yaml");
  const original = await Deno.readTextFile(manifest);
  // Removed: the plugin stops.
  await Deno.remove(manifest);
  await waitOutcome("stopped", 1);
  // Back with a network grant: compared with what it last ran with, so held.
  await Deno.writeTextFile(
    manifest,
    original +
      "capabilities:\n  network:\n    egress: [{ hosts: [api.example.com], ports: [443] }]\n",
  );
  assert.match((await waitOutcome("held", 1)).reason!, /\+net api\.example\.com:443/);
  assert.equal(host.plugins().find((p) => p.name === "cat"), undefined, "cat did not start");
  // Back as it was: it starts.
  await Deno.writeTextFile(manifest, original);
  await waitOutcome("started", 1);
  // A bigger heap is more than it had.
  await Deno.writeTextFile(manifest, original.replace("memory_mb: 64", "memory_mb: 4096"));
  assert.match((await waitOutcome("held", 2)).reason!, /\+memory 4096 MB \(was 64 MB\)/);
  // Another name would take another plugin's host config.
  await Deno.writeTextFile(manifest, original.replace("name: cat", "name: lion"));
  assert.match((await waitOutcome("held", 3)).reason!, /renamed from cat/);
  assert.deepEqual(host.plugins().map((p) => [p.name, p.state]), [["cat", "ready"]]);
  assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" });
});

Deno.test(
  "two new folders claiming one plugin name at once: one starts, one is refused, no process is left untracked",
  {
    ignore: Deno.build.os !== "linux",
  },
  async () => {
    await using home = await makeHome(WATCH);
    await using host = await home.startHost();
    const outcomes: string[] = [];
    host.on("change", (e) => void outcomes.push(e.outcome));
    await Promise.all(["a", "b"].map((as) => home.addPlugin(join(SAMPLE_PLUGINS, "cat"), { as })));
    // Both folders now say "name: cat" (addPlugin renamed the folders, not the plugins).
    for (const as of ["a", "b"]) {
      const manifest = join(home.pluginsDir, as, "manifest.yaml");
      await Deno.writeTextFile(
        manifest,
        (await Deno.readTextFile(manifest)).replace(`name: ${as}`, "name: cat"),
      );
    }
    assert.ok(
      await waitFor(() => outcomes.includes("started") && outcomes.includes("refused"), 15_000),
      JSON.stringify(outcomes),
    );
    await new Promise((r) => setTimeout(r, 500));
    const tracked = host.plugins().map((p) => p.pid);
    assert.equal(tracked.length, 1);
    const running: number[] = [];
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      const cmd = (() => {
        try {
          return Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
        } catch {
          return "";
        }
      })();
      if (cmd.includes(`${home.pluginsDir}/`) && cmd.includes("main.ts")) {
        running.push(
          Number(e.name),
        );
      }
    }
    assert.deepEqual(running, tracked, "every plugin process is one the host knows");
  },
);
