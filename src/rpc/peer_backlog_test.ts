import assert from "node:assert/strict";
import { JsonRpcErrorCode, JsonRpcPeer, RpcError } from "./mod.ts";
import { QUEUED_WRITE_OVERHEAD as O, WriteQueue } from "./_write_queue.ts";

const dec = new TextDecoder();
const enc = new TextEncoder();

/** A send that never completes (the other side stopped reading), recording what it got. */
function stuckSend(sent: Uint8Array[]) {
  return (bytes: Uint8Array) => {
    sent.push(bytes);
    return new Promise<void>(() => {});
  };
}

Deno.test("WriteQueue: past maxQueuedBytes it drops the queue, rejects its writes and later ones", async () => {
  const sent: Uint8Array[] = [];
  const backlog: RpcError[] = [];
  const q = new WriteQueue(stuckSend(sent), {
    maxQueuedBytes: 100 + 2 * O,
    onBacklog: (e) => backlog.push(e),
  });
  assert.equal(q.write(new Uint8Array(1000)) instanceof Promise, true); // sent (not queued)
  const queued = [q.write(new Uint8Array(60)), q.write(new Uint8Array(40))];
  assert.equal(q.size, 2);
  assert.equal(q.queuedBytes, 100 + 2 * O);
  const over = q.write(new Uint8Array(1));
  await assert.rejects(over!, (e: RpcError) => e.code === "RPC_WRITE_BACKLOG");
  for (const p of queued) await assert.rejects(p!, (e: RpcError) => e.code === "RPC_WRITE_BACKLOG");
  assert.equal(backlog.length, 1);
  assert.equal(backlog[0]!.details.queuedBytes, 100 + 2 * O);
  assert.equal(q.size, 0);
  assert.equal(q.queuedBytes, 0);
  await assert.rejects(
    q.write(new Uint8Array(1))!,
    (e: RpcError) => e.code === "RPC_WRITE_BACKLOG",
  );
  assert.equal(backlog.length, 1);
  assert.equal(sent.length, 1);
});

Deno.test("WriteQueue counts bytes out as they are sent", async () => {
  const waits: (() => void)[] = [];
  const q = new WriteQueue(() => new Promise<void>((r) => waits.push(r)), {
    maxQueuedBytes: 10 + O,
  });
  q.write(new Uint8Array(5));
  q.write(new Uint8Array(6));
  assert.equal(q.queuedBytes, 6 + O);
  waits.shift()!();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(q.queuedBytes, 0);
  q.write(new Uint8Array(10)); // fits again
  assert.equal(q.queuedBytes, 10 + O);
  assert.equal(q.failed, undefined);
});

Deno.test("JsonRpcPeer: a peer that stops reading while sending requests fails with RPC_WRITE_BACKLOG, once, and memory stays bounded", async () => {
  const sent: Uint8Array[] = [];
  const errors: RpcError[] = [];
  const max = 64 * 1024;
  const peer = new JsonRpcPeer({
    send: stuckSend(sent),
    maxQueuedWriteBytes: max,
    onProtocolError: (e) => errors.push(e),
  });
  const big = "m".repeat(10_000);
  let maxQueued = 0;
  for (let i = 0; i < 2_000; i++) {
    peer.receive(enc.encode(JSON.stringify({ jsonrpc: "2.0", id: i, method: big }) + "\n"));
    maxQueued = Math.max(maxQueued, peer.queuedWriteBytes);
  }
  assert.ok(maxQueued <= max, `${maxQueued}`);
  await new Promise((r) => setTimeout(r, 0));
  const backlog = errors.filter((e) => e.code === "RPC_WRITE_BACKLOG");
  assert.equal(backlog.length, 1);
  assert.equal(errors.length, 1, errors.map((e) => e.code).join());
  assert.equal(peer.queuedWriteCount, 0);
  // Our own requests fail fast once the output failed.
  await assert.rejects(
    peer.request("x", undefined),
    (e: RpcError) => e.code === "RPC_CLOSED" && (e.cause as RpcError).code === "RPC_WRITE_BACKLOG",
  );
  // Only the first answer reached send; each is short (the method name is clipped).
  assert.equal(sent.length, 1);
  const answer = JSON.parse(dec.decode(sent[0]!));
  assert.equal(answer.error.code, JsonRpcErrorCode.METHOD_NOT_FOUND);
  assert.ok(answer.error.message.length < 300, answer.error.message);
  assert.match(answer.error.message, /…\[10000 characters\]/);
  peer.close();
});

Deno.test("JsonRpcPeer refuses a string id over 256 characters with an Invalid Request, id null", () => {
  const sent: string[] = [];
  const errors: RpcError[] = [];
  const peer = new JsonRpcPeer({
    send: (b) => void sent.push(dec.decode(b)),
    onProtocolError: (e) => errors.push(e),
    handlers: { echo: (p) => p },
  });
  const long = "i".repeat(1 << 20);
  peer.receive(enc.encode(JSON.stringify({ jsonrpc: "2.0", id: long, method: "echo" }) + "\n"));
  peer.receive(
    enc.encode(
      JSON.stringify({ jsonrpc: "2.0", id: "i".repeat(256), method: "echo", params: [1] }) + "\n",
    ),
  );
  assert.equal(sent.length, 2);
  const refused = JSON.parse(sent[0]!);
  assert.equal(refused.id, null);
  assert.equal(refused.error.code, JsonRpcErrorCode.INVALID_REQUEST);
  assert.ok(sent[0]!.length < 300, sent[0]);
  assert.equal(errors.length, 1);
  assert.ok(errors[0]!.message.length < 300);
  assert.deepEqual(JSON.parse(sent[1]!), { jsonrpc: "2.0", id: "i".repeat(256), result: [1] });
  peer.close();
});

Deno.test("JsonRpcPeer: protocol errors quote a long method and id briefly", () => {
  const errors: RpcError[] = [];
  const peer = new JsonRpcPeer({ send: () => {}, onProtocolError: (e) => errors.push(e) });
  // A response naming no request, with a long string id (responses are matched, not echoed).
  peer.receive(
    enc.encode(JSON.stringify({ jsonrpc: "2.0", id: "r".repeat(100_000), result: 1 }) + "\n"),
  );
  assert.equal(errors[0]!.code, "RPC_UNKNOWN_ID");
  assert.ok(errors[0]!.message.length < 400, `${errors[0]!.message.length}`);
  peer.close();
});
