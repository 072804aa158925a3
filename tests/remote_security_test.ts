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
import { ConfigSchema } from "../src/config/mod.ts";
import { callSubject, HEADERS, RemoteLink, RemoteWorker } from "../src/remote/mod.ts";
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

const ROOT = new URL("..", import.meta.url).pathname;

// Run in a process that may reach loopback only: a connection attempt to TEST-NET would fail
// as REMOTE_CONNECT (permission denied) there, and never leave this machine.
const HOST_SCRIPT = `
import { ConfigSchema } from "./src/config/mod.ts";
import { PluginHost } from "./src/host/mod.ts";
import { RemoteLink } from "./src/remote/mod.ts";
const out = {};
try {
  await RemoteLink.connect({
    nats: ConfigSchema.parse({ remote: { nats: { servers: ["nats://192.0.2.10:4222"] } } }).remote.nats,
    baseDir: ".", maxPayloadBytes: 1024, acceptTimeoutMs: 1000, probeIntervalMs: 250,
  });
  out.link = "connected";
} catch (e) {
  out.link = e.code;
}
const host = await PluginHost.start({ configPath: Deno.env.get("PLUGSCONC_TEST_CONFIG") });
out.plugin = host.plugins().find((p) => p.name === "${PLUGIN}");
await host.stop();
console.log(JSON.stringify(out));
`;

Deno.test("a host refuses a remote plugin on an unauthenticated non-loopback NATS url before connecting", async () => {
  await using home = await makeHome({
    watcher: { enabled: false },
    // 192.0.2.0/24 is TEST-NET-1.
    remote: { nats: { servers: ["nats://192.0.2.10:4222"] } },
    plugins: { [PLUGIN]: { placement: "remote" } },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-run",
      "--allow-sys",
      "--allow-ffi",
      "--allow-net=127.0.0.1,localhost",
      "-",
    ],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", PLUGSCONC_TEST_CONFIG: home.configPath },
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(HOST_SCRIPT));
  await w.close();
  const res = await child.output();
  const text = new TextDecoder().decode(res.stdout);
  assert.ok(res.success, `${text}\n${new TextDecoder().decode(res.stderr)}`);
  const out = JSON.parse(text.trim().split("\n").at(-1)!) as {
    link: string;
    plugin: { state: string; error?: string };
  };
  // REMOTE_CONNECT here would mean it tried to connect first.
  assert.equal(out.link, "REMOTE_INSECURE");
  assert.equal(out.plugin.state, "failed");
  assert.match(
    out.plugin.error ?? "",
    /refusing to send remote plugin calls .* to NATS server 192\.0\.2\.10/,
  );
  assert.match(out.plugin.error ?? "", /allow_unauthenticated/);
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

/** Every file under `dir`, as text (SQLite and log files included). */
async function allText(dir: string): Promise<string> {
  let text = "";
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) text += await allText(p);
    else if (e.isFile) text += new TextDecoder().decode(await Deno.readFile(p));
  }
  return text;
}

Deno.test("serve with a password in the NATS url keeps it out of its output, logs and error", async () => {
  await using home = await makeHome({
    watcher: { enabled: false },
    logging: { level: "debug" },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  const res = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "main.ts"),
      "--verbose",
      "--config",
      home.configPath,
      "serve",
      "--nats",
      "nats://alice:s3cret@127.0.0.1:1",
      "--worker-id",
      "w1",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const out = new TextDecoder().decode(res.stdout) + new TextDecoder().decode(res.stderr);
  assert.equal(res.code, 1, out);
  assert.match(out, /REMOTE_CONNECT/);
  assert.match(out, /nats:\/\/alice:\*\*\*@127\.0\.0\.1:1/);
  assert.ok(!out.includes("s3cret"), out);
  assert.ok(!(await allText(home.dir)).includes("s3cret"), "the password is in a file");
});

Deno.test("a token in the NATS url authenticates a worker and a host", async () => {
  await using nats = await startNatsServer({ token: "a-long-test-token" });
  const url = `nats://a-long-test-token@127.0.0.1:${nats.port}`;
  await using workerHome = await makeHome({
    watcher: { enabled: false },
    remote: { nats: { servers: [url] } },
  });
  await workerHome.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  await using workerHost = await workerHome.startHost();
  await using _worker = await RemoteWorker.start({ host: workerHost, workerId: "url" });
  await using home = await makeHome({
    watcher: { enabled: false },
    remote: { nats: { servers: [url] } },
    plugins: { [PLUGIN]: { placement: "remote" } },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  await using host = await home.startHost();
  const r = await host.call(PLUGIN, "echo", { hi: 2 }) as { params: unknown };
  assert.deepEqual(r.params, { hi: 2 });
});

Deno.test("serve refuses a NATS url that does not parse, and a bad --worker-id, before starting plugins", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  const badUrl = memoryIo();
  const code = await runCli(
    ["--config", home.configPath, "serve", "--nats", "nats://u:s3cret@a b:4222"],
    badUrl,
  );
  assert.equal(code, 2, badUrl.stderr);
  assert.match(badUrl.stderr, /REMOTE_CONFIG.*nats:\/\/u:\*\*\*@a b:4222 is not a url/);
  assert.doesNotMatch(badUrl.stderr, /internal error|s3cret/);
  const badId = memoryIo();
  assert.equal(
    await runCli(
      ["--config", home.configPath, "serve", "--nats", "nats://127.0.0.1:1", "--worker-id", "a b"],
      badId,
    ),
    2,
    badId.stderr,
  );
  assert.match(badId.stderr, /USAGE.*--worker-id "a b"/);
  // No plugin was started: nothing wrote its data folder.
  await assert.rejects(Deno.stat(join(home.dir, "data", "plugins", PLUGIN)));
});

Deno.test("a 503 on the host's inbox fails a call only as a genuine no-responders, before a worker took it", async () => {
  await using nats = await startNatsServer();
  const rogue = await connect({ servers: nats.url });
  try {
    // A responder that takes the call, then publishes two 503s to its inbox (one naming
    // another call, one bare as NATS sends it), then the answer.
    rogue.subscribe(callSubject(PLUGIN, "mutate"), {
      callback: (_e, m) => {
        const h = (kind: string, callId = m.headers?.get(HEADERS.callId) ?? "", code?: number) => {
          const x = code === undefined ? headers() : headers(code, "No Responders");
          x.set(HEADERS.worker, "w");
          x.set(HEADERS.subject, m.subject);
          x.set(HEADERS.callId, callId);
          x.set(HEADERS.kind, kind);
          return x;
        };
        m.respond("", { headers: h("accepted") });
        m.respond("", { headers: h("result", "another-call", 503) });
        m.respond("", { headers: headers(503, "No Responders") });
        m.respond(JSON.stringify({ result: "answered" }), { headers: h("result") });
      },
    });
    await rogue.flush();
    const nc = ConfigSchema.parse({ remote: { nats: { servers: [nats.url] } } }).remote.nats;
    await using link = await RemoteLink.connect({
      nats: nc,
      baseDir: ".",
      maxPayloadBytes: 4096,
      acceptTimeoutMs: 2000,
      probeIntervalMs: 250,
    });
    assert.equal(await link.call(PLUGIN, "mutate", {}, { timeoutMs: 5000 }), "answered");
    assert.equal(link.refused, 2);
    // With nothing on a subject, NATS's own no-responders still fails the call at once.
    await assert.rejects(
      link.call(PLUGIN, "echo", {}, { timeoutMs: 5000 }),
      (e: PluginError) => e.code === "PLUGIN_UNAVAILABLE" && /no worker serves it/.test(e.message),
    );
  } finally {
    await rogue.close();
  }
});
