/**
 * Security of remote plugins: a worker never exposes plugins on an unauthenticated non-loopback
 * NATS server, the host refuses replies it did not ask for, payload limits hold.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { connect, headers } from "@nats-io/transport-node";
import { runCli } from "../src/cli/mod.ts";
import { memoryIo } from "../src/cli/io.ts";
import { PluginError } from "../src/runtime/mod.ts";
import { callSubject, HEADERS, RemoteWorker } from "../src/remote/mod.ts";
import { startNatsServer } from "../src/remote/_testing.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome } from "./_helpers.ts";

const PLUGIN = "remote-echo";

Deno.test("serve refuses an unauthenticated non-loopback NATS url before starting anything", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  const io = memoryIo();
  // 192.0.2.0/24 is TEST-NET-1: the refusal comes before any connection is tried.
  const code = await runCli(
    ["--config", home.configPath, "serve", "--nats", "nats://192.0.2.10:4222"],
    io,
  );
  assert.equal(code, 2, io.stderr);
  assert.match(io.stderr, /REMOTE_INSECURE/);
  assert.match(io.stderr, /192\.0\.2\.10/);
  assert.match(io.stderr, /allow_unauthenticated/);
  // No plugin was started: nothing wrote its data folder.
  await assert.rejects(Deno.stat(join(home.dir, "data", "plugins", PLUGIN)));
});

Deno.test("the host refuses a reply that names another subject, and the call times out", async () => {
  await using nats = await startNatsServer();
  await using home = await makeHome({
    watcher: { enabled: false },
    remote: { nats: { servers: [nats.url] } },
    plugins: { [PLUGIN]: { placement: "remote" } },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  // A rogue responder on the plugin's subject that answers as if called on another one.
  const rogue = await connect({ servers: nats.url });
  try {
    rogue.subscribe(callSubject(PLUGIN, "mutate"), {
      callback: (_e, m) => {
        const h = headers();
        h.set(HEADERS.worker, "rogue");
        h.set(HEADERS.subject, callSubject(PLUGIN, "other"));
        h.set(HEADERS.callId, m.headers?.get(HEADERS.callId) ?? "");
        h.set(HEADERS.kind, "result");
        m.respond(JSON.stringify({ result: "forged" }), { headers: h });
      },
    });
    await rogue.flush();
    await using logs = await captureLogs();
    await using host = await home.startHost();
    await assert.rejects(
      host.call(PLUGIN, "mutate", {}, { timeoutMs: 2000 }),
      (e: PluginError) => e.code === "REMOTE_WORKER_LOST" || e.code === "PLUGIN_TIMEOUT",
    );
    assert.ok(
      logs.records.some((r) => String(r.message.join("")).includes("refused a reply")),
      "no refusal was logged",
    );
  } finally {
    await rogue.close();
  }
});

Deno.test("the host refuses params over max_line_bytes before sending them", async () => {
  await using nats = await startNatsServer();
  await using home = await makeHome({
    watcher: { enabled: false },
    defaults: { max_line_bytes: 2048 },
    remote: { nats: { servers: [nats.url] } },
    plugins: { [PLUGIN]: { placement: "remote" } },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  await using host = await home.startHost();
  await assert.rejects(
    host.call(PLUGIN, "mutate", { big: "x".repeat(4096) }),
    (e: PluginError) => e.code === "PLUGIN_CALL_FAILED" && /exceed max_line_bytes/.test(e.message),
  );
});

Deno.test("a token-protected server: RemoteWorker (library) serves with the token, a host without it cannot connect", async () => {
  await using nats = await startNatsServer({ token: "a-long-test-token" });
  await using workerHome = await makeHome({
    watcher: { enabled: false },
    remote: { nats: { servers: [nats.url], token: "a-long-test-token" } },
  });
  await workerHome.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  await using workerHost = await workerHome.startHost();
  await using worker = await RemoteWorker.start({ host: workerHost, workerId: "lib" });
  assert.deepEqual(worker.served.map((s) => s.plugin), [PLUGIN]);

  const hostConfig = (token?: string) => ({
    watcher: { enabled: false },
    remote: { nats: { servers: [nats.url], ...(token ? { token } : {}) } },
    plugins: { [PLUGIN]: { placement: "remote" } },
  });
  await using good = await makeHome(hostConfig("a-long-test-token"));
  await good.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  await using host = await good.startHost();
  const r = await host.call(PLUGIN, "echo", { hi: 1 }) as { params: unknown };
  assert.deepEqual(r.params, { hi: 1 });

  await using bad = await makeHome(hostConfig());
  await bad.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  await using refused = await bad.startHost();
  const info = refused.plugins().find((p) => p.name === PLUGIN)!;
  assert.equal(info.state, "failed");
  assert.match(info.error ?? "", /cannot connect to NATS/);
  await assert.rejects(
    refused.call(PLUGIN, "echo", {}),
    (e: PluginError) => e.code === "PLUGIN_UNAVAILABLE",
  );
});
