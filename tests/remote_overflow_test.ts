/** `placement: overflow`: a local plugin whose calls beyond `overflow_after` go to NATS workers. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnWorker, startNatsServer } from "../src/remote/_testing.ts";
import { FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";

const PLUGIN = "remote-echo";

Deno.test("an overflow plugin serves locally and sends calls beyond overflow_after to a worker", async () => {
  await using nats = await startNatsServer();
  await using workerHome = await makeHome({ watcher: { enabled: false } });
  await workerHome.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  await using worker = spawnWorker(workerHome.configPath, nats.url, "spare");
  await worker.ready;
  await using home = await makeHome({
    watcher: { enabled: false },
    remote: { nats: { servers: [nats.url] } },
    plugins: { [PLUGIN]: { placement: "overflow", overflow_after: 1 } },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  await using host = await home.startHost();
  const localPid = host.supervisor(PLUGIN)?.process?.pid;
  assert.equal(typeof localPid, "number");
  const info = host.plugins().find((p) => p.name === PLUGIN)!;
  assert.equal(info.placement, "overflow");
  assert.equal(info.pid, localPid);
  assert.ok(
    await waitFor(
      () => host.plugins()[0]?.instances[0]?.workers?.some((w) => w.id === "spare") ?? false,
      10_000,
    ),
  );
  // One call alone stays local.
  assert.equal((await host.call(PLUGIN, "mutate", {}) as { pid: number }).pid, localPid);
  // Four at once: the first holds the local process, the others overflow.
  const pids = (await Promise.all(
    Array.from({ length: 4 }, () => host.call(PLUGIN, "slowMutate", { ms: 500 })),
  ) as { pid: number }[]).map((r) => r.pid);
  assert.equal(pids.filter((p) => p === localPid).length, 1, `pids: ${pids}`);
  assert.equal(new Set(pids).size, 2, `pids: ${pids}`);
  assert.equal(host.health().plugins[PLUGIN]?.status, "healthy");
});
