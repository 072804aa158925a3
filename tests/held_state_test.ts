/**
 * What the API shows of a held reload and of a plugin whose instances do not all serve: real
 * plugin processes, a real watcher and the gateway on an ephemeral loopback port.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { PluginHost } from "../src/host/mod.ts";
import { Gateway, type PluginView } from "../src/server/mod.ts";
import { FIXTURE_PLUGINS, makeHome, SAMPLE_PLUGINS, waitFor } from "./_helpers.ts";

const SECRET = "hunter2-not-for-the-api";

/** `GET /v1/plugins/{name}` (or the list) on a gateway started for `host`, as text and JSON. */
async function view(host: PluginHost, path: string): Promise<{ text: string; body: unknown }> {
  await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
  const response = await fetch(gateway.url + path);
  assert.equal(response.status, 200, path);
  const text = await response.text();
  return { text, body: JSON.parse(text) };
}

async function plugin(host: PluginHost, name: string): Promise<PluginView & { text: string }> {
  const { text, body } = await view(host, `/v1/plugins/${name}`);
  return { ...(body as PluginView), text };
}

const widen = (text: string) =>
  text + "capabilities:\n  network:\n    egress: [{ hosts: [api.example.com], ports: [443] }]\n" +
  "  env: [CAT_SECRET]\n";

Deno.test("/v1/plugins/<name> shows a reload held for widening with its diff, and no hold once it is reverted or the host restarted", async () => {
  await using home = await makeHome({
    watcher: { enabled: true, reload: true, debounce_ms: 100 },
    security: { policy: "strict" },
    plugins: { cat: { env: { CAT_SECRET: SECRET } } },
  });
  const dir = await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  const manifest = join(dir, "manifest.yaml");
  const original = await Deno.readTextFile(manifest);
  {
    await using host = await home.startHost();
    const before = await plugin(host, "cat");
    assert.equal(before.state, "ready");
    assert.equal("held" in before, false, before.text);
    const pid = before.instances[0]!.pid;

    await Deno.writeTextFile(manifest, widen(original));
    assert.ok(
      await waitFor(async () => (await plugin(host, "cat")).held !== undefined, 15_000),
      "no held reload shown",
    );
    const held = await plugin(host, "cat");
    assert.equal(held.held!.diff, "+net api.example.com:443, +env CAT_SECRET");
    assert.deepEqual(held.held!.widened, [
      { kind: "net", grant: "api.example.com:443" },
      { kind: "env", grant: "CAT_SECRET" },
    ]);
    assert.ok(!Number.isNaN(Date.parse(held.held!.since)), held.held!.since);
    assert.equal(held.state, "ready", "the running version keeps serving");
    assert.equal(held.instances[0]!.pid, pid);
    assert.ok(!held.text.includes(SECRET), "an env value reached the API");
    const list = await view(host, "/v1/plugins");
    assert.deepEqual((list.body as { plugins: PluginView[] }).plugins[0]!.held, held.held);
    assert.ok(!list.text.includes(SECRET), "an env value reached the API");

    // Reverted, the manifest grants nothing new: the reload goes through and the hold is over.
    await Deno.writeTextFile(manifest, original);
    assert.ok(
      await waitFor(async () => {
        const v = await plugin(host, "cat");
        return v.held === undefined && v.state === "ready" && v.instances[0]!.pid !== pid;
      }, 15_000),
      "the hold outlived its revert",
    );

    // Held again, then the host restarts: the operator's decision grants the widening.
    await Deno.writeTextFile(manifest, widen(original));
    assert.ok(
      await waitFor(async () => (await plugin(host, "cat")).held !== undefined, 15_000),
      "the second widening was not held",
    );
  }
  await using host = await home.startHost();
  const after = await plugin(host, "cat");
  assert.equal(after.state, "ready");
  assert.equal("held" in after, false, after.text);
  assert.match(after.grants, /api\.example\.com:443/);
});

Deno.test("a plugin with one of its two instances failed beyond its restart budget is degraded, with each instance's state", async () => {
  await using home = await makeHome({
    watcher: { enabled: false },
    defaults: { restart: { max_restarts: 0 }, instances: 2 },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "behave"));
  await using host = await home.startHost();
  const all = await plugin(host, "behave");
  assert.equal(all.state, "ready");
  assert.deepEqual(all.instances.map((i) => i.state), ["ready", "ready"]);

  const [well, victim] = host.supervisors("behave");
  const wellPid = well!.process!.pid;
  void victim!.process!.call("crash", {}).catch(() => {});
  assert.ok(
    await waitFor(() => host.plugins()[0]!.state === "degraded", 15_000),
    JSON.stringify(host.plugins()[0]),
  );
  const info = host.plugins()[0]!;
  assert.equal(info.pid, wellPid, "the pid is the serving instance's");
  assert.match(info.error ?? "", /0 restarts, then/);

  const degraded = await plugin(host, "behave");
  assert.equal(degraded.state, "degraded");
  assert.deepEqual(
    degraded.instances.map((i) => ({ index: i.index, state: i.state, pid: i.pid })),
    [
      { index: 0, state: "ready", pid: wellPid },
      { index: 1, state: "failed", pid: null },
    ],
  );
  assert.deepEqual(degraded.instances.map((i) => i.restarts), [0, 0]);
  // Degraded still serves: calls go to the ready instance.
  assert.deepEqual(await host.call("behave", "echo", { n: 1 }), { n: 1 });
  assert.equal(await host.call("behave", "pid"), wellPid);
});
