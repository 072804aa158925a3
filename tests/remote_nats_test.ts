/**
 * Remote plugins over a real nats-server on 127.0.0.1: one host, `plugsconc serve` workers in
 * their own processes, the same call pipeline as local plugins.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { PluginHost } from "../src/host/mod.ts";
import { PluginError } from "../src/runtime/mod.ts";
import { Gateway, type PluginView } from "../src/server/mod.ts";
import { spawnWorker, startNatsServer, type WorkerProcess } from "../src/remote/_testing.ts";
import { FIXTURE_PLUGINS, makeHome, type TestHome, waitFor } from "./_helpers.ts";

const PLUGIN = "remote-echo";

async function workerHome(): Promise<TestHome> {
  const home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  return home;
}

async function hostHome(url: string): Promise<TestHome> {
  const home = await makeHome({
    watcher: { enabled: false },
    remote: { nats: { servers: [url] } },
    plugins: {
      [PLUGIN]: {
        placement: "remote",
        // Workers killed on purpose fail calls; the breaker must not turn that into fail-fast.
        circuit_breaker: { enabled: false },
        health: { interval_ms: 300 },
      },
    },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  return home;
}

async function pidOf(host: PluginHost): Promise<number> {
  return (await host.call(PLUGIN, "echo", {}) as { pid: number }).pid;
}

function workerIds(host: PluginHost): string[] {
  const p = host.plugins().find((x) => x.name === PLUGIN);
  return (p?.instances[0]?.workers ?? []).map((w) => w.id).sort();
}

Deno.test("two workers share a remote plugin's calls, survive a SIGKILL of one, and a restarted worker rejoins", async (t) => {
  await using nats = await startNatsServer();
  await using homeA = await workerHome();
  await using homeB = await workerHome();
  await using homeH = await hostHome(nats.url);
  const workers: WorkerProcess[] = [];
  try {
    const a = spawnWorker(homeA.configPath, nats.url, "wa");
    const b = spawnWorker(homeB.configPath, nats.url, "wb");
    workers.push(a, b);
    await Promise.all([a.ready, b.ready]);
    await using host = await homeH.startHost();

    await t.step("the host lists the plugin as remote with both workers", async () => {
      assert.ok(await waitFor(() => workerIds(host).length === 2, 10_000), String(workerIds(host)));
      const info = host.plugins().find((x) => x.name === PLUGIN)!;
      assert.equal(info.placement, "remote");
      assert.equal(info.state, "ready");
      assert.deepEqual(workerIds(host), ["wa", "wb"]);
      // GET /v1/plugins shows the same.
      await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
      const res = await fetch(`${gateway.url}/v1/plugins`);
      const body = await res.json() as { plugins: PluginView[] };
      const view = body.plugins.find((p) => p.name === PLUGIN);
      assert.equal(view?.placement, "remote");
      assert.deepEqual(view?.instances[0]?.workers?.map((w) => w.id).sort(), ["wa", "wb"]);
    });

    await t.step("calls are spread across both workers", async () => {
      const pids = new Set<number>();
      for (let i = 0; i < 40; i++) pids.add(await pidOf(host));
      assert.equal(pids.size, 2, `plugin pids seen: ${[...pids]}`);
    });

    await t.step("1,000 idempotent calls all succeed while one worker is SIGKILLed", async () => {
      // Non-idempotent calls that will be in flight on both workers when one dies.
      const slow = Array.from(
        { length: 16 },
        () =>
          host.call(PLUGIN, "slowMutate", { ms: 4000 }, { timeoutMs: 30_000 }).then(
            (r) => ({ ok: true as const, r }),
            (e) => ({ ok: false as const, e }),
          ),
      );
      let done = 0;
      const failures: unknown[] = [];
      const loops = Array.from({ length: 4 }, async (_, k) => {
        for (let i = k; i < 1000; i += 4) {
          try {
            const r = await host.call(PLUGIN, "echo", { i }) as { params: { i: number } };
            assert.equal(r.params.i, i);
          } catch (e) {
            failures.push(e);
          }
          if (++done === 200) a.child.kill("SIGKILL");
        }
      });
      await Promise.all(loops);
      assert.equal(done, 1000);
      assert.deepEqual(failures.map((e) => (e as PluginError).message), []);
      await a.child.status;
      const outcomes = await Promise.all(slow);
      const lost = outcomes.filter((o) => !o.ok);
      assert.ok(lost.length > 0, "no non-idempotent call was in flight on the killed worker");
      assert.ok(
        lost.length < 16,
        "every non-idempotent call failed, also those on the live worker",
      );
      for (const o of lost) {
        const e = (o as { e: PluginError }).e;
        assert.equal(e.code, "REMOTE_WORKER_LOST", e.message);
        assert.match(e.message, /worker wa/);
      }
    });

    await t.step("a restarted worker rejoins and takes calls again", async () => {
      const a2 = spawnWorker(homeA.configPath, nats.url, "wa");
      workers.push(a2);
      await a2.ready;
      assert.ok(await waitFor(() => workerIds(host).length === 2, 10_000), String(workerIds(host)));
      const pids = new Set<number>();
      for (let i = 0; i < 40; i++) pids.add(await pidOf(host));
      assert.equal(pids.size, 2, `plugin pids seen: ${[...pids]}`);
    });

    await t.step("a deadline reaches the plugin on the worker as a cancel", async () => {
      await assert.rejects(
        host.call(PLUGIN, "sleep", { ms: 20_000 }, { timeoutMs: 300 }),
        (e: PluginError) => e.code === "PLUGIN_TIMEOUT",
      );
      // Either worker may hold it: ask until the one that does answers.
      const seen = await waitFor(async () => {
        const list = await host.call(PLUGIN, "cancelled", {}) as unknown[];
        return list.length > 0;
      }, 10_000);
      assert.ok(seen, "no worker's plugin saw a cancel");
    });

    await t.step("stopping the workers drains: a call in flight finishes", async () => {
      const inFlight = host.call(PLUGIN, "slowMutate", { ms: 1500 }, { timeoutMs: 30_000 });
      // Let the request reach a worker before both are told to stop.
      await new Promise((r) => setTimeout(r, 500));
      const statuses = await Promise.all([workers[1]!.stop(), workers[2]!.stop()]);
      assert.ok(statuses.every((s) => s.success), `exit statuses: ${JSON.stringify(statuses)}`);
      const r = await inFlight as { pid: number };
      assert.equal(typeof r.pid, "number");
    });

    await t.step("with no worker left, a call fails at once with PLUGIN_UNAVAILABLE", async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await assert.rejects(
        host.call(PLUGIN, "mutate", {}, { timeoutMs: 60_000 }),
        (e: PluginError) =>
          e.code === "PLUGIN_UNAVAILABLE" && /no worker serves it/.test(e.message),
      );
    });
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
  }
});
