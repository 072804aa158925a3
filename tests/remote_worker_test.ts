/**
 * `RemoteWorker` (library) against raw NATS requests: calls in flight are kept apart per
 * plugin and per call id.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  connect,
  createInbox,
  headers,
  type Msg,
  type NatsConnection,
} from "@nats-io/transport-node";
import { callSubject, cancelSubject, HEADERS, RemoteWorker } from "../src/remote/mod.ts";
import { startNatsServer } from "../src/remote/_testing.ts";
import { FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";

const A = "remote-echo";
const B = "remote-echo-b";

/** Sends one raw call; resolves with the parsed body of its `result` reply. */
function rawCall(
  nc: NatsConnection,
  plugin: string,
  method: string,
  callId: string,
  params: unknown,
): { accepted: Promise<void>; result: Promise<{ result?: unknown; error?: { message: string } }> } {
  const inbox = createInbox();
  let accepted!: () => void;
  const acceptedP = new Promise<void>((r) => (accepted = r));
  const result = new Promise<{ result?: unknown; error?: { message: string } }>((resolve) => {
    const sub = nc.subscribe(inbox, {
      callback: (_e, m: Msg) => {
        if (m.headers?.get(HEADERS.kind) === "accepted") return accepted();
        sub.unsubscribe();
        resolve(m.json());
      },
    });
  });
  const h = headers();
  h.set(HEADERS.callId, callId);
  h.set(HEADERS.timeoutMs, "20000");
  nc.publish(callSubject(plugin, method), JSON.stringify({ params }), { reply: inbox, headers: h });
  return { accepted: acceptedP, result };
}

function cancel(nc: NatsConnection, plugin: string, callId: string): void {
  const h = headers();
  h.set(HEADERS.callId, callId);
  nc.publish(cancelSubject(plugin), "", { headers: h });
}

Deno.test("a worker keeps calls of two plugins with the same call id apart, and refuses a duplicate id", async () => {
  await using nats = await startNatsServer();
  await using home = await makeHome({
    watcher: { enabled: false },
    remote: { nats: { servers: [nats.url] } },
  });
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"));
  await home.addPlugin(join(FIXTURE_PLUGINS, "remote_echo"), { as: B });
  await using host = await home.startHost();
  await using worker = await RemoteWorker.start({ host, workerId: "w" });
  assert.deepEqual(worker.served.map((s) => s.plugin).sort(), [A, B]);
  const nc = await connect({ servers: nats.url });
  try {
    // The same caller's id on two plugins: a cancel on A's subject must stop A's call only.
    const a = rawCall(nc, A, "sleep", "same", { ms: 1500 });
    await a.accepted;
    const b = rawCall(nc, B, "sleep", "same", { ms: 1500 });
    await b.accepted;
    assert.ok(await waitFor(() => worker.inFlight === 2, 5000), `in flight: ${worker.inFlight}`);
    cancel(nc, A, "same");
    const [ra, rb] = await Promise.all([a.result, b.result]);
    assert.ok(ra.error, `A's call was not cancelled: ${JSON.stringify(ra)}`);
    assert.ok(!rb.error, `B's call failed: ${JSON.stringify(rb)}`);

    // A second call with an id this plugin already runs gets a clear error; the first one
    // keeps its entry (a later cancel still reaches it).
    const first = rawCall(nc, A, "sleep", "dup", { ms: 20_000 });
    await first.accepted;
    assert.ok(await waitFor(() => worker.inFlight === 1, 5000), `in flight: ${worker.inFlight}`);
    const second = await rawCall(nc, A, "echo", "dup", {}).result;
    assert.match(second.error?.message ?? "", /call id dup is already in flight on worker w/);
    assert.equal(worker.inFlight, 1);
    cancel(nc, A, "dup");
    const r1 = await first.result;
    assert.ok(r1.error, `the first call was not cancelled: ${JSON.stringify(r1)}`);
    assert.ok(await waitFor(() => worker.inFlight === 0, 5000), `in flight: ${worker.inFlight}`);
  } finally {
    await nc.close();
  }
});
