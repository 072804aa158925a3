/**
 * Streaming over the HTTP gateway (issue 16, part 4) with a real plugin process: `Accept:
 * text/event-stream` gives SSE, `Accept: application/x-ndjson` gives NDJSON, both with every
 * chunk and then the result; errors before the first chunk keep their status; a client that
 * goes away cancels the stream and stops the producer; the token still applies.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Gateway } from "../src/server/mod.ts";
import { FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";

const TOKEN = "test-token-0123456789abcdef";
const AUTH = { authorization: `Bearer ${TOKEN}` };

async function setUp(config: Record<string, unknown> = {}) {
  const home = await makeHome({ watcher: { enabled: false }, ...config });
  await home.addPlugin(join(FIXTURE_PLUGINS, "streamer"));
  const host = await home.startHost();
  const gateway = await Gateway.start(host, { listen: "127.0.0.1:0", token: TOKEN });
  return {
    host,
    base: gateway.url,
    stats: () => host.call("streamer", "stats") as Promise<{ produced: number; closed: number }>,
    async [Symbol.asyncDispose]() {
      await gateway.close();
      await host[Symbol.asyncDispose]();
      await home[Symbol.asyncDispose]();
    },
  };
}

function post(base: string, path: string, body: unknown, accept?: string) {
  return fetch(base + path, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...AUTH,
      ...(accept === undefined ? {} : { accept }),
    },
    body: JSON.stringify(body),
  });
}

/** Parses an SSE body into its events. */
function sseEvents(text: string): { event: string; data: unknown }[] {
  return text.split("\n\n").filter((b) => b.trim() !== "").map((block) => {
    const lines = block.split("\n");
    const event = lines.find((l) => l.startsWith("event: "))!.slice(7);
    const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
    return { event, data: JSON.parse(data) };
  });
}

Deno.test("the gateway streams chunks and the result as SSE and as NDJSON", async () => {
  await using t = await setUp();
  const sse = await post(t.base, "/v1/plugins/streamer/count", { n: 500 }, "text/event-stream");
  assert.equal(sse.status, 200);
  assert.match(sse.headers.get("content-type")!, /^text\/event-stream/);
  assert.ok(sse.headers.get("x-request-id"));
  const events = sseEvents(await sse.text());
  assert.equal(events.length, 501);
  events.slice(0, 500).forEach((e, i) => assert.deepEqual(e, { event: "chunk", data: { i } }));
  assert.deepEqual(events[500], { event: "result", data: { result: { total: 500 } } });

  const nd = await post(t.base, "/v1/plugins/streamer/count", { n: 300 }, "application/x-ndjson");
  assert.equal(nd.status, 200);
  assert.equal(nd.headers.get("content-type"), "application/x-ndjson");
  const lines = (await nd.text()).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
  assert.equal(lines.length, 301);
  lines.slice(0, 300).forEach((l, i) => assert.deepEqual(l, { chunk: { i } }));
  assert.deepEqual(lines[300], { result: { total: 300 } });
});

Deno.test("a plain JSON call of a streaming method is 406; errors before a chunk keep their status", async () => {
  await using t = await setUp();
  const plain = await post(t.base, "/v1/plugins/streamer/count", { n: 3 });
  assert.equal(plain.status, 406);
  const body = await plain.json();
  assert.equal(body.error.code, "STREAM_REQUIRED");
  assert.match(body.error.message, /text\/event-stream/);
  const missing = await post(t.base, "/v1/plugins/streamer/nope", {}, "text/event-stream");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "METHOD_NOT_FOUND");
  const anonymous = await fetch(t.base + "/v1/plugins/streamer/count", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: "{}",
  });
  assert.equal(anonymous.status, 401);
  await anonymous.body?.cancel();
  // A violation before any chunk is a 502; one after chunks were sent is the stream's last event.
  const skip = await post(
    t.base,
    "/v1/plugins/streamer/rogue",
    { mode: "skip" },
    "text/event-stream",
  );
  assert.equal(skip.status, 502);
  assert.equal((await skip.json()).error.code, "STREAM_PROTOCOL");
  const flood = await post(
    t.base,
    "/v1/plugins/streamer/rogue",
    { mode: "flood", n: 2000 },
    "application/x-ndjson",
  );
  assert.equal(flood.status, 200);
  const lines = (await flood.text()).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines[0], { chunk: 0 });
  assert.equal(lines.at(-1).error.code, "STREAM_PROTOCOL");
});

Deno.test("a client that goes away mid-stream cancels it and the producer stops", async () => {
  await using t = await setUp();
  const controller = new AbortController();
  const response = await fetch(t.base + "/v1/plugins/streamer/count", {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/x-ndjson", ...AUTH },
    body: JSON.stringify({ n: 1_000_000 }),
    signal: controller.signal,
  });
  const reader = response.body!.getReader();
  let bytes = 0;
  while (bytes < 1000) bytes += (await reader.read()).value?.length ?? 0;
  controller.abort();
  await reader.cancel().catch(() => {});
  assert.ok(await waitFor(async () => (await t.stats()).closed === 1, 5_000), "never closed");
  const { produced } = await t.stats();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await t.stats()).produced, produced);
  assert.ok(produced < 1_000_000);
});

Deno.test("a client that stops reading pauses the plugin: host and plugin stay bounded", async () => {
  await using t = await setUp();
  const response = await post(
    t.base,
    "/v1/plugins/streamer/count",
    { n: 1_000_000, size: 16 * 1024 },
    "application/x-ndjson",
  );
  const reader = response.body!.getReader();
  await reader.read();
  // Socket buffers, the response's queue and the credit window fill, then the producer waits.
  let last = -1;
  assert.ok(
    await waitFor(async () => {
      const { produced } = await t.stats();
      const still = produced === last;
      last = produced;
      await new Promise((r) => setTimeout(r, 100));
      return still && produced > 0;
    }, 10_000),
    "the producer never paused",
  );
  // 16 KiB chunks: kernel socket buffers hold a few MiB at most, the host 16 chunks.
  console.log(`paused after ${last} chunks`);
  assert.ok(last < 2_000, `produced ${last} chunks while nobody read`);
  await reader.cancel();
  assert.ok(await waitFor(async () => (await t.stats()).closed === 1, 5_000), "never closed");
});

Deno.test("an SSE client that stops reading ends as STREAM_NOT_READ and does not open the breaker", async () => {
  // The policy's own deadline, and a breaker that opens on the first failure it counts.
  await using t = await setUp({
    defaults: { timeout_ms: 3_000, circuit_breaker: { failure_threshold: 1 } },
  });
  const stalled = await post(
    t.base,
    "/v1/plugins/streamer/count",
    { n: 1_000_000, size: 16 * 1024 },
    "text/event-stream",
  );
  assert.equal(stalled.status, 200);
  // Nobody reads: socket buffers, the response's queue and the window fill, then the plugin
  // waits for credit until the deadline.
  const failed = 'code="STREAM_NOT_READ"';
  const ended = await waitFor(() => t.host.metrics.prometheus().includes(failed), 15_000);
  if (!ended) await stalled.body?.cancel(); // else the gateway waits for this client on close
  assert.ok(
    ended,
    t.host.metrics.prometheus().split("\n").filter((l) => /fail/.test(l)).join("\n"),
  );
  const last = sseEvents(await stalled.text()).at(-1)!;
  assert.equal(last.event, "error");
  assert.equal((last.data as { error: { code: string } }).error.code, "STREAM_NOT_READ");
  // Before: PLUGIN_TIMEOUT, counted, and every other client got CIRCUIT_OPEN.
  const other = await post(t.base, "/v1/plugins/streamer/stats", {});
  assert.equal(other.status, 200, await other.clone().text());
  await other.body?.cancel();
});
