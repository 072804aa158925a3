/**
 * Plugin-to-plugin calls (`ctx.host.plugins.call`, `host/plugins.call`) with real plugin
 * processes: grants, cycles, the caller's deadline and cancel, the target's errors, order.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { captureLogs, FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";
import type { PluginHost } from "../src/host/mod.ts";
import { RemoteWorker } from "../src/remote/mod.ts";
import { startNatsServer } from "../src/remote/_testing.ts";

const A = "a-caller";
const B = "b-callee";
const C = "c-other";

async function callsHome() {
  // a's calls may take 30 s: what ends a nested call early is the test's doing, not a timeout.
  const home = await makeHome({
    security: { permission_audit: false },
    plugins: { [A]: { timeout_ms: 30_000 } },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "caller_a"));
  await home.addPlugin(join(FIXTURE_PLUGINS, "callee_b"));
  await home.addPlugin(join(FIXTURE_PLUGINS, "callee_b"), { as: C });
  return home;
}

type Outcome = {
  ok?: unknown;
  error?: { code: string; message: string; details?: Record<string, unknown> };
};

function viaA(host: PluginHost, params: Record<string, unknown>, options = {}) {
  return host.call(A, "call", params, options) as Promise<Outcome>;
}

Deno.test("a plugin calls another's granted method, is refused the others, and the target never sees them", async () => {
  await using home = await callsHome();
  await using host = await home.startHost();
  assert.deepEqual(await viaA(host, { plugin: B, method: "add", params: { a: 2, b: 3 } }), {
    ok: 5,
  });
  assert.deepEqual(await viaA(host, { plugin: B, method: "echo", params: { x: [1] } }), {
    ok: { x: [1] },
  });

  const secret = await viaA(host, { plugin: B, method: "secret" });
  assert.equal(secret.error?.code, "PLUGIN_CALL_NOT_ALLOWED");
  assert.match(secret.error!.message, /a-caller may not call b-callee\."secret"/);
  assert.match(secret.error!.message, /grants only b-callee\.echo, b-callee\.add/);
  assert.equal(secret.error?.details?.target, B);

  const other = await viaA(host, { plugin: C, method: "echo" });
  assert.equal(other.error?.code, "PLUGIN_CALL_NOT_ALLOWED");
  assert.match(other.error!.message, /may not call c-other\."echo"/);

  // Neither target ran the refused methods.
  const countsB = await host.call(B, "counts") as Record<string, number>;
  assert.equal(countsB.secret, undefined);
  assert.equal(countsB.add, 1);
  assert.deepEqual(await host.call(C, "counts"), {});

  // The refusals are in the audit trail, decided from the sending process.
  const refused = host.audit!.query({ kind: "plugin_call.refused", plugin: A });
  assert.deepEqual(
    refused.map((r) => JSON.parse(r.detail).target).sort(),
    [B, C],
  );
  // The grant in words, for plugins list / inspect / the API.
  const info = host.plugins().find((p) => p.name === A)!;
  assert.match(info.grants, /may call b-callee\.echo, b-callee\.add, b-callee\.fail/);
});

Deno.test("a cycle a -> b -> a is refused, naming the chain, and so is a call to itself", async () => {
  await using home = await callsHome();
  await using host = await home.startHost();
  // a -> b.back -> a.echo: b's call is refused; a.echo never runs.
  const cycle = await viaA(host, { plugin: B, method: "back", params: { method: "echo" } });
  assert.deepEqual(cycle.error, undefined);
  const inner = (cycle.ok as Outcome).error!;
  assert.equal(inner.code, "PLUGIN_CALL_CYCLE");
  assert.match(inner.message, /a-caller -> b-callee -> a-caller/);
  assert.deepEqual(inner.details?.chain, [A, B, A]);
  assert.equal((await host.call(A, "counts") as Record<string, number>).echo, undefined);

  // A grant to itself is refused at load (src/manifest/plugin_grants_test.ts); the host
  // refuses such a call anyway, before it could be a cycle.
  const self = await viaA(host, { plugin: A, method: "echo" });
  assert.equal(self.error?.code, "PLUGIN_CALL_NOT_ALLOWED");

  // b calling a from a call of its own is no cycle: mutual grants are fine.
  assert.deepEqual(await host.call(B, "back", { method: "echo" }), { ok: { from: "b" } });
});

Deno.test("a granted method the target lacks is METHOD_NOT_FOUND without the target's methods; start warns", async () => {
  await using home = await callsHome();
  await using logs = await captureLogs();
  await using host = await home.startHost();
  const missing = await viaA(host, { plugin: B, method: "nope" });
  assert.equal(missing.error?.code, "METHOD_NOT_FOUND", JSON.stringify(missing));
  // b-callee's `secret` is not granted to a-caller: nothing may name it.
  assert.ok(!JSON.stringify(missing).includes("secret"), JSON.stringify(missing));
  const warning = logs.records.find((r) =>
    String(r.message.join("")).includes("does not offer") && r.properties.plugin === A
  );
  assert.ok(warning, "no warning about the grant of b-callee.nope");
  assert.equal(warning.properties.methods, "nope");
});

Deno.test("the target's error reaches the caller with the target's code and data", async () => {
  await using home = await callsHome();
  await using host = await home.startHost();
  const failed = await viaA(host, { plugin: B, method: "fail" });
  assert.equal(failed.error?.code, "PLUGIN_CALL_FAILED");
  assert.match(failed.error!.message, /b-callee\.fail failed: out of stock/);
  assert.equal(failed.error?.details?.rpcCode, -32050);
  assert.deepEqual(failed.error?.details?.data, { code: "OUT_OF_STOCK", sku: "x1" });

  // A crash reaches the caller as its code, without the target's stderr.
  const crashed = await viaA(host, { plugin: B, method: "crash" });
  assert.equal(crashed.error?.code, "PLUGIN_CRASHED", JSON.stringify(crashed));
  assert.doesNotMatch(JSON.stringify(crashed), /private-stderr/);
});

Deno.test("the caller's deadline reaches the nested call: it is cancelled when the caller's time is up", async () => {
  await using home = await callsHome();
  await using host = await home.startHost();
  // detached: a's SDK never cancels the nested request, so only the host's deadline can.
  await assert.rejects(
    viaA(host, { plugin: B, method: "sleep", params: { ms: 5000 }, detached: true }, {
      timeoutMs: 300,
    }),
    (e: Error & { code?: string }) => e.code === "PLUGIN_TIMEOUT",
  );
  assert.ok(
    await waitFor(async () => (await host.call(B, "cancelled") as string[]).length > 0, 4000),
    "b-callee saw no $/cancel",
  );
  // a's handler kept what its request ended with (its own answer came too late to be read):
  // the host ended it at a's deadline, by the timeout it gave it or by the end of a's call.
  assert.ok(await waitFor(async () => (await host.call(A, "last")) !== null, 4000));
  const outcome = await host.call(A, "last") as Outcome;
  assert.ok(
    outcome.error?.code === "PLUGIN_TIMEOUT" || outcome.error?.code === "PLUGIN_CALL_CANCELLED",
    JSON.stringify(outcome),
  );
  if (outcome.error?.code === "PLUGIN_TIMEOUT") {
    assert.ok((outcome.error.details?.timeoutMs as number) <= 300, JSON.stringify(outcome));
  }
  // b's own timeout is 10 s: what it got was a's remaining time, not its own.
  assert.equal(host.timeoutFor(B, "sleep"), 10_000);
});

Deno.test("a streaming handler's nested call gets the stream's deadline, not the target's own", async () => {
  await using home = await callsHome();
  await using host = await home.startHost();
  const stream = host.stream(
    A,
    "relay",
    { plugin: B, method: "sleep", params: { ms: 5000 }, detached: true },
    { timeoutMs: 300 },
  );
  const chunks: unknown[] = [];
  await assert.rejects(
    (async () => {
      for await (const chunk of stream) chunks.push(chunk);
    })(),
    (e: Error & { code?: string }) => e.code === "PLUGIN_TIMEOUT",
  );
  assert.deepEqual(chunks, ["calling"]);
  // Without the stream's context the nested call would be background work with b's 10 s
  // timeout, and would end with b's answer after 5 s.
  assert.ok(await waitFor(async () => (await host.call(A, "last")) !== null, 4000));
  const outcome = await host.call(A, "last") as Outcome;
  assert.ok(
    outcome.error?.code === "PLUGIN_TIMEOUT" || outcome.error?.code === "PLUGIN_CALL_CANCELLED",
    JSON.stringify(outcome),
  );
  assert.ok(
    await waitFor(async () => (await host.call(B, "cancelled") as string[]).length > 0, 4000),
    "b-callee saw no $/cancel",
  );
});

Deno.test("cancelling the outer call cancels the nested one, even when the caller does not", async () => {
  await using home = await callsHome();
  await using host = await home.startHost();
  for (const detached of [false, true]) {
    const before = (await host.call(B, "cancelled") as string[]).length;
    const sleeps = (await host.call(B, "counts") as Record<string, number>).sleep ?? 0;
    const controller = new AbortController();
    const outer = viaA(host, { plugin: B, method: "sleep", params: { ms: 20_000 }, detached }, {
      signal: controller.signal,
    });
    assert.ok(
      await waitFor(
        async () => ((await host.call(B, "counts") as Record<string, number>).sleep ?? 0) > sleeps,
        5000,
      ),
    );
    controller.abort();
    await assert.rejects(
      outer,
      (e: Error & { code?: string }) => e.code === "PLUGIN_CALL_CANCELLED",
    );
    assert.ok(
      await waitFor(
        async () => (await host.call(B, "cancelled") as string[]).length > before,
        5000,
      ),
      `detached: ${detached}`,
    );
  }
});

Deno.test("a request that names no call cannot shed the chain or the deadline of the calls in flight", async () => {
  await using home = await callsHome();
  await using host = await home.startHost();
  // a -> b.back -> a.echo, where b's request to a names no call: still a cycle.
  const back = await viaA(host, {
    plugin: B,
    method: "back",
    params: { method: "echo", detached: true },
  });
  assert.equal((back.ok as Outcome).error?.code, "PLUGIN_CALL_CYCLE", JSON.stringify(back));
  assert.equal((await host.call(A, "counts") as Record<string, number>).echo, undefined);
  // a's call has 300 ms; its nested call names no call: it ends with a's call anyway.
  const before = (await host.call(B, "cancelled") as string[]).length;
  await assert.rejects(
    viaA(
      host,
      { plugin: B, method: "sleep", params: { ms: 5000 }, detached: true, request: null },
      {
        timeoutMs: 300,
      },
    ),
    (e: Error & { code?: string }) => e.code === "PLUGIN_TIMEOUT",
  );
  assert.ok(
    await waitFor(async () => (await host.call(B, "cancelled") as string[]).length > before, 4000),
    "b-callee's sleep ran on after a's call ended",
  );
});

Deno.test("a plugin's call targets start before it", async () => {
  await using home = await callsHome();
  await using host = await home.startHost();
  const starts = host.audit!.query({ kind: "plugin.start" }).sort((x, y) => x.id - y.id)
    .map((r) => r.plugin);
  // a-caller sorts first, but it may call b-callee: b starts before it.
  assert.ok(starts.indexOf(B) < starts.indexOf(A), starts.join(", "));
});

Deno.test("a request naming no call in flight gets the chain [caller]; malformed params are refused", async () => {
  await using home = await callsHome();
  await using host = await home.startHost();
  for (const request of [null, 987_654, "made-up"]) {
    assert.deepEqual(
      await viaA(host, {
        plugin: B,
        method: "add",
        params: { a: 1, b: 1 },
        detached: true,
        request,
      }),
      { ok: 2 },
      `request ${request}`,
    );
    // The chain starts again at a-caller, so a -> b -> a is still refused.
    const back = await viaA(host, {
      plugin: B,
      method: "back",
      params: { method: "echo" },
      detached: true,
      request,
    });
    assert.equal((back.ok as Outcome).error?.code, "PLUGIN_CALL_CYCLE");
  }
  const bad = await viaA(host, { plugin: "../etc", method: "echo", detached: true });
  assert.equal(bad.error?.code, "PLUGIN_CALL_INVALID_PARAMS");
  const wrongId = await viaA(host, {
    plugin: B,
    method: "add",
    params: { a: 1, b: 1 },
    detached: true,
    request: { id: 1 },
  });
  assert.equal(wrongId.error?.code, "PLUGIN_CALL_INVALID_PARAMS");
});

Deno.test("a plugin whose manifest grants no calls is refused any, with the reason", async () => {
  await using home = await makeHome({ security: { permission_audit: false } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "caller_a"), {
    manifest: (text) => text.replace(/^capabilities:\n(?: {2}.*\n)+/m, ""),
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "callee_b"));
  await using host = await home.startHost();
  const refused = await viaA(host, { plugin: B, method: "echo" });
  assert.equal(refused.error?.code, "PLUGIN_CALL_NOT_ALLOWED");
  assert.match(refused.error!.message, /grants no calls/);
  assert.doesNotMatch(host.plugins().find((p) => p.name === A)!.grants, /may call/);
});

Deno.test("a reload that grants another plugin's method is held under strict, and the old grants keep applying", async () => {
  await using home = await makeHome({
    security: { permission_audit: false, policy: "strict" },
    watcher: { enabled: true, reload: true, debounce_ms: 100 },
  });
  const dir = await home.addPlugin(join(FIXTURE_PLUGINS, "caller_a"));
  await home.addPlugin(join(FIXTURE_PLUGINS, "callee_b"));
  await using host = await home.startHost();
  const reasons: string[] = [];
  host.on("change", (e) => {
    if (e.outcome === "held" && e.plugin === A) reasons.push(e.reason ?? "");
  });
  const manifest = join(dir, "manifest.yaml");
  const text = await Deno.readTextFile(manifest);
  assert.match(text, /crash, nope\]/);
  await Deno.writeTextFile(manifest, text.replace("crash, nope]", "crash, nope, secret]"));
  assert.ok(await waitFor(() => reasons.length > 0, 15_000), "the reload was not held");
  assert.match(reasons[0]!, /\+plugins b-callee\.secret/);
  const secret = await viaA(host, { plugin: B, method: "secret" });
  assert.equal(secret.error?.code, "PLUGIN_CALL_NOT_ALLOWED");
});

/**
 * A NATS worker running the fixtures `onWorker`, and a host with a-caller and b-callee where
 * `remote` is placed on the workers (ready when this resolves).
 */
async function overNats(url: string, onWorker: string[], remote: string, workerId: string) {
  const nats = { nats: { servers: [url] } };
  const quiet = { security: { permission_audit: false }, watcher: { enabled: false } };
  const stack = new AsyncDisposableStack();
  try {
    const workerHome = stack.use(await makeHome({ ...quiet, remote: nats }));
    for (const f of onWorker) await workerHome.addPlugin(join(FIXTURE_PLUGINS, f));
    const workerHost = stack.use(await workerHome.startHost());
    stack.use(await RemoteWorker.start({ host: workerHost, workerId }));
    const home = stack.use(
      await makeHome({ ...quiet, remote: nats, plugins: { [remote]: { placement: "remote" } } }),
    );
    await home.addPlugin(join(FIXTURE_PLUGINS, "caller_a"));
    await home.addPlugin(join(FIXTURE_PLUGINS, "callee_b"));
    const host = stack.use(await home.startHost());
    assert.ok(
      await waitFor(() => host.plugins().find((p) => p.name === remote)?.state === "ready", 10_000),
    );
    return { workerHost, host, [Symbol.asyncDispose]: () => stack.disposeAsync() };
  } catch (e) {
    await stack.disposeAsync();
    throw e;
  }
}

Deno.test("over NATS: a local caller reaches a remote target; a caller on a worker without the target fails at once", async () => {
  await using nats = await startNatsServer();
  {
    // b-callee runs on a worker; a-caller locally.
    await using run = await overNats(nats.url, ["callee_b"], B, "wb");
    assert.deepEqual(await viaA(run.host, { plugin: B, method: "add", params: { a: 4, b: 5 } }), {
      ok: 9,
    });
  }
  {
    // a -> b on a worker -> a on that worker: the chain travels with the call, still a cycle.
    await using run = await overNats(nats.url, ["callee_b", "caller_a"], B, "wab");
    const back = await viaA(run.host, { plugin: B, method: "back", params: { method: "echo" } });
    const inner = (back.ok as Outcome | undefined)?.error;
    assert.equal(inner?.code, "PLUGIN_CALL_CYCLE", JSON.stringify(back));
    assert.deepEqual(inner?.details?.chain, [A, B, A]);
    const counts = await run.workerHost.call(A, "counts") as Record<string, number>;
    assert.equal(counts.echo, undefined);
  }
  {
    // a-caller runs on a worker that has no b-callee.
    await using run = await overNats(nats.url, ["caller_a"], A, "wa");
    const outcome = await viaA(run.host, { plugin: B, method: "add", params: { a: 1, b: 2 } });
    assert.equal(outcome.error?.code, "PLUGIN_NOT_FOUND", JSON.stringify(outcome));
    assert.doesNotMatch(outcome.error!.message, /known plugins/);
    assert.equal((await run.host.call(B, "counts") as Record<string, number>).add, undefined);
  }
});
