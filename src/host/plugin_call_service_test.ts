import assert from "node:assert/strict";
import type { RpcHandlerContext } from "../rpc/mod.ts";
import type { CallContext } from "../runtime/mod.ts";
import type { CallOptions } from "./call_options.ts";
import { MAX_CALL_DEPTH, PluginCallService } from "./plugin_call_service.ts";

// The host here is a stand-in that records what it was asked: the chain depth and the
// in-flight limit need more plugins and calls than an integration test should start
// (tests/plugin_calls_test.ts covers the rest with real processes).

interface Asked {
  name: string;
  method: string;
  options: CallOptions;
}

function service(contexts: Map<unknown, CallContext>, hold?: Promise<void>) {
  const asked: Asked[] = [];
  const calls = new PluginCallService({
    plugin: "a",
    targets: [{ name: "b", methods: ["m"] }],
    host: {
      async call(name, method, _params, options) {
        asked.push({ name, method, options });
        await hold;
        return "ok";
      },
      timeoutFor: () => 5000,
    },
    contextOf: (id) => contexts.get(id),
    maxInFlight: 2,
  });
  const handler = calls.handlers["host/plugins.call"]!;
  const ctx: RpcHandlerContext = {
    signal: new AbortController().signal,
    id: 1,
    method: "host/plugins.call",
  };
  const call = (params: unknown) => handler(params, ctx) as Promise<unknown>;
  return { asked, call };
}

const open = () => new AbortController().signal;

Deno.test("host/plugins.call refuses a chain that already has MAX_CALL_DEPTH plugins", async () => {
  const chain = Array.from({ length: MAX_CALL_DEPTH }, (_, i) => `p${i}`);
  const { asked, call } = service(
    new Map([[7, { chain, deadline: undefined, signal: open() }]]),
  );
  await assert.rejects(
    call({ request: 7, plugin: "b", method: "m" }),
    (e: Error & { code?: string }) => e.code === "PLUGIN_CALL_DEPTH" && /p0 -> p1/.test(e.message),
  );
  assert.equal(asked.length, 0);
  const shorter = chain.slice(1);
  const ok = service(new Map([[7, { chain: shorter, deadline: undefined, signal: open() }]]));
  assert.equal(await ok.call({ request: 7, plugin: "b", method: "m" }), "ok");
  assert.deepEqual(ok.asked[0]!.options.chain, shorter);
});

Deno.test("host/plugins.call gives the nested call what is left of the inbound deadline, at most the target's timeout", async () => {
  const soon = performance.now() + 1000;
  const { asked, call } = service(
    new Map<unknown, CallContext>([
      [1, { chain: ["a"], deadline: soon, signal: open() }],
      [2, { chain: ["a"], deadline: performance.now() + 60_000, signal: open() }],
      [3, { chain: ["a"], deadline: performance.now() - 1, signal: open() }],
    ]),
  );
  await call({ request: 1, plugin: "b", method: "m" });
  await call({ request: 2, plugin: "b", method: "m" });
  await call({ request: 404, plugin: "b", method: "m" });
  const [first, second, background] = asked.map((a) => a.options.timeoutMs!);
  assert.ok(first! <= 1000 && first! > 0, String(first));
  assert.equal(second, 5000);
  assert.equal(background, 5000);
  assert.deepEqual(asked[2]!.options.chain, ["a"]);
  await assert.rejects(
    call({ request: 3, plugin: "b", method: "m" }),
    (e: Error & { code?: string }) => e.code === "PLUGIN_TIMEOUT",
  );
  assert.equal(asked.length, 3);
});

Deno.test("host/plugins.call refuses calls beyond maxInFlight, and counts finished ones out", async () => {
  const { promise: hold, resolve } = Promise.withResolvers<void>();
  const { call } = service(new Map(), hold);
  const two = [call({ plugin: "b", method: "m" }), call({ plugin: "b", method: "m" })];
  await assert.rejects(
    call({ plugin: "b", method: "m" }),
    (e: Error & { code?: string }) => e.code === "PLUGIN_CALL_LIMIT",
  );
  resolve();
  assert.deepEqual(await Promise.all(two), ["ok", "ok"]);
  assert.equal(await call({ plugin: "b", method: "m" }), "ok");
});

Deno.test("host/plugins.call refuses malformed params with PLUGIN_CALL_INVALID_PARAMS", async () => {
  const { asked, call } = service(new Map());
  for (
    const params of [
      null,
      [],
      "b.m",
      { plugin: "B", method: "m" },
      { plugin: "b" },
      { plugin: "b", method: "x".repeat(257) },
      { plugin: "b", method: "m", request: true },
    ]
  ) {
    await assert.rejects(
      call(params),
      (e: Error & { code?: string }) => e.code === "PLUGIN_CALL_INVALID_PARAMS",
      JSON.stringify(params),
    );
  }
  assert.equal(asked.length, 0);
});
