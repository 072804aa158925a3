import assert from "node:assert/strict";
import { PlugsconcError } from "../errors/mod.ts";
import { createMemoryPair } from "./memory_transport.ts";
import { JsonRpcPeer, type JsonRpcPeerOptions } from "./peer.ts";
import { JsonRpcErrorCode, RpcError, type RpcErrorCode, RpcRemoteError } from "./rpc_error.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A peer whose other side is the test: raw lines in, parsed messages out. */
function wirePeer(options: Partial<JsonRpcPeerOptions> = {}) {
  const sent: Record<string, unknown>[] = [];
  const errors: RpcError[] = [];
  const peer = new JsonRpcPeer({
    send: (bytes) => {
      const text = dec.decode(bytes);
      assert.equal(text.indexOf("\n"), text.length - 1, "one message per send");
      sent.push(JSON.parse(text));
    },
    onProtocolError: (e) => errors.push(e),
    ...options,
  });
  const feed = (text: string | Uint8Array) =>
    peer.receive(typeof text === "string" ? enc.encode(text) : text);
  return { peer, sent, errors, feed };
}

function codes(errors: readonly RpcError[]): RpcErrorCode[] {
  return errors.map((e) => e.code);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await within(promise);
  } catch (e) {
    return e;
  }
  assert.fail("expected the promise to reject");
}

/** Fails instead of hanging when `promise` does not settle within `ms`. */
async function within<T>(promise: Promise<T>, ms = 2_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Lets microtask-delivered messages (and their answers) cross the memory pair. */
async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setTimeout(r, 0));
}

Deno.test("JsonRpcPeer answers requests in both directions over a memory pair", async () => {
  await using pair = createMemoryPair({
    a: { handlers: { "host/kv.get": (p) => ({ value: `v:${(p as { key: string }).key}` }) } },
    b: {
      handlers: {
        echo: (p) => p,
        async callBack(_p, ctx) {
          assert.equal(ctx.method, "callBack");
          // A handler may call the other side while serving a request.
          return await pair.b.request("host/kv.get", { key: "k" });
        },
      },
    },
  });
  assert.deepEqual(await within(pair.a.request("echo", { x: [1, "é", null] })), {
    x: [1, "é", null],
  });
  assert.deepEqual(await within(pair.a.request("callBack")), { value: "v:k" });
  const many = await within(
    Promise.all(Array.from({ length: 100 }, (_, i) => pair.a.request("echo", [i]))),
  );
  assert.deepEqual(many, Array.from({ length: 100 }, (_, i) => [i]));
  assert.equal(pair.a.pendingCount, 0);
  assert.equal(pair.b.inFlightCount, 0);
});

Deno.test("JsonRpcPeer frames correctly when every byte arrives in its own chunk", async () => {
  await using pair = createMemoryPair({ chunkBytes: 1, b: { handlers: { echo: (p) => p } } });
  const params = { text: "línea\ncon salto 🎉", n: 42 };
  assert.deepEqual(await within(pair.a.request("echo", params)), params);
});

Deno.test("JsonRpcPeer delivers notifications with their params", async () => {
  const seen: [string, unknown][] = [];
  await using pair = createMemoryPair({
    a: { onNotification: (method, params) => void seen.push([method, params]) },
  });
  await pair.b.notify("$/log", { level: "info", message: "hi", fields: { n: 1 } });
  await pair.b.notify("progress");
  await settle();
  assert.deepEqual(seen, [
    ["$/log", { level: "info", message: "hi", fields: { n: 1 } }],
    ["progress", undefined],
  ]);
});

Deno.test("JsonRpcPeer answers undefined results with null", async () => {
  await using pair = createMemoryPair({ b: { handlers: { nothing: () => undefined } } });
  assert.equal(await within(pair.a.request("nothing")), null);
});

Deno.test("JsonRpcPeer forwards a cancelled request to the handler's signal", async () => {
  let sawAbort: unknown;
  const started = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<void>();
  await using pair = createMemoryPair({
    b: {
      handlers: {
        slow: (_p, { signal }) =>
          new Promise((_resolve, reject) => {
            signal.addEventListener("abort", () => {
              sawAbort = signal.reason;
              reject(signal.reason);
              finished.resolve();
            });
            started.resolve();
          }),
      },
    },
  });
  const controller = new AbortController();
  const call = pair.a.request("slow", {}, { signal: controller.signal });
  await within(started.promise);
  assert.equal(pair.b.inFlightCount, 1);
  const reason = new Error("user pressed stop");
  controller.abort(reason);
  const error = await rejection(call);
  assert.ok(error instanceof RpcError);
  assert.equal(error.code, "RPC_CANCELLED");
  assert.equal(error.cause, reason);
  await within(finished.promise);
  assert.ok(sawAbort instanceof RpcError);
  assert.equal(sawAbort.code, "RPC_CANCELLED");
  await settle();
  assert.equal(pair.b.inFlightCount, 0);
  // The handler's late error response is expected, not a protocol error.
  assert.equal(pair.a.protocolErrorCount, 0);
});

Deno.test("JsonRpcPeer rejects at once and sends nothing for an already aborted signal", async () => {
  const { peer, sent } = wirePeer();
  const error = await rejection(
    peer.request("x", {}, { signal: AbortSignal.abort(new Error("too late")) }),
  );
  assert.ok(error instanceof RpcError);
  assert.equal(error.code, "RPC_CANCELLED");
  assert.equal(sent.length, 0);
  assert.equal(peer.pendingCount, 0);
});

Deno.test("JsonRpcPeer sends $/cancel and rejects with RPC_TIMEOUT when timeoutMs elapses", async () => {
  const { peer, sent, errors, feed } = wirePeer();
  const error = await rejection(peer.request("slow", { n: 1 }, { timeoutMs: 20 }));
  assert.ok(error instanceof RpcError);
  assert.equal(error.code, "RPC_TIMEOUT");
  assert.ok(error.cause instanceof DOMException);
  assert.equal(error.cause.name, "TimeoutError");
  assert.equal(sent.length, 2);
  assert.deepEqual(sent[0], { jsonrpc: "2.0", id: 1, method: "slow", params: { n: 1 } });
  assert.deepEqual(sent[1], { jsonrpc: "2.0", method: "$/cancel", params: { id: 1 } });
  assert.equal(peer.pendingCount, 0);
  // The late answer to the cancelled request is dropped quietly.
  feed('{"jsonrpc":"2.0","id":1,"result":"late"}\n');
  assert.deepEqual(errors, []);
});

Deno.test("JsonRpcPeer treats an AbortSignal.timeout() abort as RPC_TIMEOUT", async () => {
  const { peer, sent } = wirePeer();
  const error = await rejection(peer.request("slow", {}, { signal: AbortSignal.timeout(10) }));
  assert.ok(error instanceof RpcError);
  assert.equal(error.code, "RPC_TIMEOUT");
  assert.deepEqual(sent[1], { jsonrpc: "2.0", method: "$/cancel", params: { id: 1 } });
});

Deno.test("JsonRpcPeer turns a handler's thrown error into an RpcRemoteError with its message", async () => {
  await using pair = createMemoryPair({
    b: {
      handlers: {
        fails: () => {
          throw new Error("disk is full");
        },
        failsLater: () => Promise.reject(new PlugsconcError("KV_MISSING", "no such key", {})),
      },
    },
  });
  const error = await rejection(pair.a.request("fails"));
  assert.ok(error instanceof RpcRemoteError);
  assert.equal(error.code, "RPC_REMOTE");
  assert.equal(error.rpcCode, JsonRpcErrorCode.INTERNAL_ERROR);
  assert.equal(error.remoteMessage, "disk is full");
  assert.match(error.message, /"fails".*disk is full/);
  const later = await rejection(pair.a.request("failsLater"));
  assert.ok(later instanceof RpcRemoteError);
  assert.equal(later.remoteMessage, "no such key");
  assert.deepEqual(later.data, { code: "KV_MISSING", details: {} });
  assert.equal(pair.b.inFlightCount, 0);
});

Deno.test("JsonRpcPeer keeps the numeric code and data a handler throws", async () => {
  await using pair = createMemoryPair({
    b: {
      handlers: {
        invalid: () => {
          throw { code: JsonRpcErrorCode.INVALID_PARAMS, message: "x must be a number", data: [1] };
        },
        rethrow: () => {
          throw new RpcRemoteError(-32001, "upstream said no", { data: { why: "quota" } });
        },
      },
    },
  });
  const error = await rejection(pair.a.request("invalid"));
  assert.ok(error instanceof RpcRemoteError);
  assert.equal(error.rpcCode, -32602);
  assert.equal(error.remoteMessage, "x must be a number");
  assert.deepEqual(error.data, [1]);
  const again = await rejection(pair.a.request("rethrow"));
  assert.ok(again instanceof RpcRemoteError);
  assert.equal(again.rpcCode, -32001);
  assert.deepEqual(again.data, { why: "quota" });
});

Deno.test("JsonRpcPeer answers an unknown method with -32601", async () => {
  await using pair = createMemoryPair();
  const error = await rejection(pair.a.request("nope", {}));
  assert.ok(error instanceof RpcRemoteError);
  assert.equal(error.rpcCode, JsonRpcErrorCode.METHOD_NOT_FOUND);
  assert.match(error.remoteMessage, /nope/);
});

Deno.test("JsonRpcPeer reports a response with an unknown id as a protocol error", () => {
  const { peer, sent, errors, feed } = wirePeer();
  feed('{"jsonrpc":"2.0","id":77,"result":1}\n{"jsonrpc":"2.0","id":"abc","result":1}\n');
  assert.deepEqual(codes(errors), ["RPC_UNKNOWN_ID", "RPC_UNKNOWN_ID"]);
  assert.equal(errors[0]?.details.id, 77);
  assert.equal(sent.length, 0, "responses are never answered");
  assert.equal(peer.protocolErrorCount, 2);
});

Deno.test("JsonRpcPeer reports a second response to the same request as an unknown id", async () => {
  const { peer, errors, feed } = wirePeer();
  const call = peer.request("x");
  feed('{"jsonrpc":"2.0","id":1,"result":"first"}\n{"jsonrpc":"2.0","id":1,"result":"again"}\n');
  assert.equal(await within(call), "first");
  assert.deepEqual(codes(errors), ["RPC_UNKNOWN_ID"]);
});

Deno.test("JsonRpcPeer reports a duplicate request id while the first is in flight", async () => {
  const release = Promise.withResolvers<void>();
  let calls = 0;
  const { peer, sent, errors, feed } = wirePeer({
    handlers: {
      wait: async () => {
        calls++;
        await release.promise;
        return "done";
      },
    },
  });
  feed('{"jsonrpc":"2.0","id":5,"method":"wait"}\n{"jsonrpc":"2.0","id":5,"method":"wait"}\n');
  assert.deepEqual(codes(errors), ["RPC_DUPLICATE_ID"]);
  assert.equal(calls, 1);
  assert.equal(peer.inFlightCount, 1);
  release.resolve();
  await settle();
  assert.deepEqual(sent, [{ jsonrpc: "2.0", id: 5, result: "done" }]);
  // Once answered, the id may be used again.
  feed('{"jsonrpc":"2.0","id":5,"method":"wait"}\n');
  await settle();
  assert.equal(calls, 2);
  assert.equal(errors.length, 1);
});

Deno.test("JsonRpcPeer answers invalid JSON with a parse error and reports it", () => {
  const { sent, errors, feed } = wirePeer();
  feed("hello from a stray console.log\n{broken\n");
  assert.deepEqual(codes(errors), ["RPC_INVALID_JSON", "RPC_INVALID_JSON"]);
  assert.match(errors[0]!.message, /stray console\.log/);
  assert.equal(sent.length, 2);
  assert.equal(sent[0]?.id, null);
  assert.equal((sent[0]?.error as { code: number }).code, JsonRpcErrorCode.PARSE_ERROR);
});

Deno.test("JsonRpcPeer answers non-object JSON and bad envelopes with -32600", () => {
  const { sent, errors, feed } = wirePeer({ handlers: { ok: () => 1 } });
  feed(
    [
      "42",
      '"text"',
      "null",
      "[1,2]",
      '{"jsonrpc":"1.0","id":1,"method":"ok"}',
      '{"jsonrpc":"2.0","id":2,"method":7}',
      '{"jsonrpc":"2.0","id":{},"method":"ok"}',
      '{"jsonrpc":"2.0","id":3,"method":"ok","params":"str"}',
      '{"jsonrpc":"2.0","id":4}',
    ].join("\n") + "\n",
  );
  assert.equal(errors.length, 9);
  assert.ok(errors.every((e) => e.code === "RPC_INVALID_MESSAGE"), codes(errors).join());
  assert.equal(sent.length, 9);
  for (const message of sent) {
    assert.equal((message.error as { code: number }).code, JsonRpcErrorCode.INVALID_REQUEST);
  }
  // Where the id is readable, the error answers it.
  assert.deepEqual(sent.map((m) => m.id), [null, null, null, null, 1, 2, null, 3, null]);
});

Deno.test("JsonRpcPeer rejects a pending request whose response is malformed", async () => {
  const { peer, sent, errors, feed } = wirePeer();
  const call = peer.request("x");
  feed('{"jsonrpc":"2.0","id":1,"error":{"code":"bad"}}\n');
  const error = await rejection(call);
  assert.ok(error instanceof RpcError);
  assert.equal(error.code, "RPC_INVALID_MESSAGE");
  assert.deepEqual(codes(errors), ["RPC_INVALID_MESSAGE"]);
  assert.equal(sent.length, 1, "only the request; responses are never answered");
});

Deno.test("JsonRpcPeer reports an error response without id as a remote error", () => {
  const { errors, feed } = wirePeer();
  feed('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}\n');
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof RpcRemoteError);
  assert.equal(errors[0].rpcCode, -32700);
});

Deno.test("JsonRpcPeer reports framing errors and keeps serving", async () => {
  const { peer, sent, errors, feed } = wirePeer({ maxLineBytes: 64, handlers: { ok: () => "ok" } });
  feed(`{"jsonrpc":"2.0","id":1,"method":"ok","params":["${"x".repeat(100)}"]}\n`);
  feed(new Uint8Array([0x7b, 0xff, 0x7d, 0x0a]));
  feed('{"jsonrpc":"2.0","id":2,"method":"ok"}\n{"jsonrpc":"2.0","id":3,"met');
  const pending = rejection(peer.request("never"));
  peer.close(new Error("EOF"));
  assert.deepEqual(codes(errors), ["RPC_LINE_TOO_LONG", "RPC_INVALID_UTF8", "RPC_TRUNCATED"]);
  assert.deepEqual(sent[0], { jsonrpc: "2.0", id: 2, result: "ok" });
  const error = await pending;
  assert.ok(error instanceof RpcError && error.code === "RPC_CLOSED");
});

Deno.test("JsonRpcPeer.close() rejects pending requests and aborts running handlers", async () => {
  let handlerSignal: AbortSignal | undefined;
  const started = Promise.withResolvers<void>();
  await using pair = createMemoryPair({
    b: {
      handlers: {
        hang: (_p, { signal }) => {
          handlerSignal = signal;
          started.resolve();
          return new Promise(() => {});
        },
      },
    },
  });
  const calls = [pair.a.request("hang"), pair.a.request("hang"), pair.a.request("hang")];
  await within(started.promise);
  assert.equal(pair.a.pendingCount, 3);
  const reason = new Error("plugin exited");
  pair.close(reason);
  for (const call of calls) {
    const error = await rejection(call);
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, "RPC_CLOSED");
    assert.equal(error.cause, reason);
  }
  assert.equal(pair.a.pendingCount, 0);
  assert.equal(pair.b.inFlightCount, 0);
  assert.ok(handlerSignal?.aborted);
  assert.equal((handlerSignal.reason as RpcError).code, "RPC_CLOSED");
  const after = await rejection(pair.a.request("x"));
  assert.ok(after instanceof RpcError && after.code === "RPC_CLOSED");
  await assert.rejects(pair.a.notify("x"), (e: unknown) => e instanceof RpcError);
});

Deno.test("JsonRpcPeer keeps write order when send returns promises", async () => {
  const written: number[] = [];
  let inSend = 0;
  const peer = new JsonRpcPeer({
    send: async (bytes) => {
      assert.equal(inSend, 0, "send must not overlap");
      inSend++;
      // Later messages complete faster, so any reordering would show. Messages that queued
      // behind a pending send come gathered, several lines per send.
      const ns = dec.decode(bytes).split("\n").filter((l) => l !== "").map((l) =>
        (JSON.parse(l).params as number[])[0]!
      );
      await new Promise((r) => setTimeout(r, ns[0]! % 3));
      written.push(...ns);
      inSend--;
    },
  });
  const sends = Array.from({ length: 30 }, (_, i) => peer.notify("n", [i]));
  assert.ok(peer.queuedWriteCount > 0);
  await within(Promise.all(sends));
  assert.deepEqual(written, Array.from({ length: 30 }, (_, i) => i));
  assert.equal(peer.queuedWriteCount, 0);
});

Deno.test("JsonRpcPeer rejects a request whose write fails", async () => {
  const errors: RpcError[] = [];
  const peer = new JsonRpcPeer({
    send: () => {
      throw new Error("broken pipe");
    },
    onProtocolError: (e) => errors.push(e),
  });
  const error = await rejection(peer.request("x"));
  assert.ok(error instanceof RpcError && error.code === "RPC_CLOSED");
  assert.match(error.message, /broken pipe/);
  assert.equal(peer.pendingCount, 0);
  await assert.rejects(peer.notify("y"), /broken pipe/);
  assert.deepEqual(codes(errors), ["RPC_CLOSED"]);
});

Deno.test("JsonRpcPeer works over asynchronous sends end to end", async () => {
  await using pair = createMemoryPair({ asyncSend: true, b: { handlers: { echo: (p) => p } } });
  const results = await within(
    Promise.all(Array.from({ length: 50 }, (_, i) => pair.a.request("echo", [i]))),
  );
  assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => [i]));
});

Deno.test("JsonRpcPeer survives a throwing onProtocolError and onNotification", async () => {
  const { peer, sent, feed } = wirePeer({
    onProtocolError: () => {
      throw new Error("reporter bug");
    },
    onNotification: () => {
      throw new Error("listener bug");
    },
    handlers: { ok: () => "ok" },
  });
  feed('garbage\n{"jsonrpc":"2.0","method":"note"}\n{"jsonrpc":"2.0","id":1,"method":"ok"}\n');
  await settle();
  assert.equal(peer.protocolErrorCount, 2);
  assert.deepEqual(sent.at(-1), { jsonrpc: "2.0", id: 1, result: "ok" });
});

Deno.test("JsonRpcPeer refuses bad arguments up front", async () => {
  const { peer } = wirePeer();
  await assert.rejects(peer.request("x", {}, { timeoutMs: 0 }), RangeError);
  assert.throws(() => peer.handle("$/cancel", () => 1), RangeError);
  const error = await rejection(peer.request("x", { n: 1n }));
  assert.ok(error instanceof RpcError && error.code === "RPC_INVALID_MESSAGE");
  assert.equal(peer.pendingCount, 0);
});

Deno.test("JsonRpcPeer times out each request at its own deadline with one shared timer", async () => {
  const { peer, sent } = wirePeer();
  const order: number[] = [];
  const t0 = performance.now();
  const track = (ms: number) =>
    peer.request("hang", [], { timeoutMs: ms }).catch((e: RpcError) => {
      assert.equal(e.code, "RPC_TIMEOUT");
      assert.ok(performance.now() - t0 >= ms - 1, `${ms} ms request timed out early`);
      order.push(ms);
    });
  // An answered request with a long timeout must not keep the timer (the sanitizer checks).
  const answered = peer.request("quick", [], { timeoutMs: 60_000 });
  const waits = [track(300), track(50), track(150)];
  peer.receive(enc.encode(JSON.stringify({ jsonrpc: "2.0", id: sent[0]!.id, result: 1 }) + "\n"));
  assert.equal(await answered, 1);
  await Promise.all(waits);
  assert.deepEqual(order, [50, 150, 300]);
  // Each timed-out request was cancelled on the wire.
  assert.equal(sent.filter((m) => m.method === "$/cancel").length, 3);
  peer.close();
});
