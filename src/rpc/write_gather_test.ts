import assert from "node:assert/strict";
import { QUEUED_WRITE_OVERHEAD as O, WriteQueue } from "./_write_queue.ts";
import { JsonRpcPeer } from "./mod.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();

/** An asynchronous send that records each write and settles when told. */
function manualSend() {
  const writes: string[] = [];
  const settle: (() => void)[] = [];
  const send = (bytes: Uint8Array) => {
    writes.push(dec.decode(bytes));
    return new Promise<void>((r) => settle.push(r));
  };
  return { writes, settle, send };
}

Deno.test("WriteQueue gathers the messages queued behind a pending send into one send, in order", async () => {
  const { writes, settle, send } = manualSend();
  const q = new WriteQueue(send);
  const first = q.write(enc.encode("a\n"));
  const rest = ["b\n", "c\n", "d\n"].map((m) => q.write(enc.encode(m)));
  assert.deepEqual(writes, ["a\n"]);
  assert.equal(q.size, 3);
  settle.shift()!();
  await first;
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(writes, ["a\n", "b\nc\nd\n"]);
  assert.equal(q.queuedBytes, 0);
  settle.shift()!();
  await Promise.all(rest);
});

Deno.test("WriteQueue with gatherTick sends what one tick wrote in one send; the bound still holds", async () => {
  const { writes, settle, send } = manualSend();
  const q = new WriteQueue(send, { gatherTick: true, maxQueuedBytes: 10 + 3 * O });
  const written = [
    q.write(enc.encode("1\n")),
    q.write(enc.encode("2\n")),
    q.write(enc.encode("3\n")),
  ];
  assert.deepEqual(writes, []); // not before the end of the tick
  assert.equal(q.queuedBytes, 6 + 3 * O);
  await Promise.resolve();
  assert.deepEqual(writes, ["1\n2\n3\n"]);
  settle.shift()!();
  await Promise.all(written);
  // Past the bound while a gathered send is pending: the queue fails, as without gathering.
  q.write(enc.encode("x"));
  await Promise.resolve();
  const over = q.write(new Uint8Array(10 + 3 * O));
  await assert.rejects(over!, (e: { code?: string }) => e.code === "RPC_WRITE_BACKLOG");
});

Deno.test("JsonRpcPeer with gatherWrites answers every request of a burst through few sends", async () => {
  const sends: number[] = [];
  const to: { b?: JsonRpcPeer } = {};
  const a = new JsonRpcPeer({
    gatherWrites: true,
    send: (bytes) => {
      sends.push(bytes.length);
      const copy = bytes.slice();
      queueMicrotask(() => to.b!.receive(copy));
      return Promise.resolve();
    },
  });
  const peerB = to.b = new JsonRpcPeer({
    handlers: { echo: (p) => p },
    send: (bytes) => {
      const copy = bytes.slice();
      queueMicrotask(() => a.receive(copy));
    },
  });
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => a.request("echo", [i])));
  assert.deepEqual(results, Array.from({ length: 50 }, (_, i) => [i]));
  assert.equal(sends.length, 1);
  a.close();
  peerB.close();
});
