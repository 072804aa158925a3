/**
 * The bounds of a stream with a real plugin process (review of issue 16): lines that pass the
 * log gate uncharged as chunks are bounded by the credit and must be chunks; chunks are bounded
 * in bytes (`max_chunk_bytes = maxBufferedBytes / window`); a stream whose consumer did not read
 * until its deadline does not count against the plugin's circuit breaker.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PluginCallError, StreamError } from "../src/runtime/mod.ts";
import { FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";

async function streamerHost(config: Record<string, unknown> = {}) {
  const home = await makeHome({ watcher: { enabled: false }, ...config });
  await home.addPlugin(join(FIXTURE_PLUGINS, "streamer"));
  const host = await home.startHost();
  const pid = () => host.plugins().find((p) => p.name === "streamer")!.pid;
  return {
    host,
    pid,
    async [Symbol.asyncDispose]() {
      await host[Symbol.asyncDispose]();
      await home[Symbol.asyncDispose]();
    },
  };
}

const isProtocol = (pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof StreamError, String(e));
  assert.equal(e.code, "STREAM_PROTOCOL");
  assert.match(e.message, pattern);
  return true;
};

Deno.test("a line that begins as an expected $/chunk but is none ends that stream; the plugin serves on", async () => {
  await using h = await streamerHost();
  const pid = h.pid();
  for (const mode of ["garbage", "dup"]) {
    // Before: each such line passed uncharged (the credit was never spent), and the stream
    // went on to its real chunk and result.
    const stream = h.host.stream("streamer", "fake", { mode, n: 50 }, { window: 4 });
    await assert.rejects(stream.result, isProtocol(/begins as its \$\/chunk but is none/));
    assert.equal(stream.received, 0, mode);
  }
  assert.equal(h.pid(), pid);
  assert.equal((await Array.fromAsync(h.host.stream("streamer", "count", { n: 20 }))).length, 20);
});

Deno.test("max_chunk_bytes is maxBufferedBytes / window: the SDK refuses a bigger chunk and says how to fix it", async () => {
  await using h = await streamerHost();
  // 300 KiB chunks: over 16 MiB / 64 (the defaults), within 16 MiB / 16.
  const big = { n: 3, size: 300 * 1024 };
  const refused = h.host.stream("streamer", "count", big);
  await assert.rejects(Array.fromAsync(refused), (e: unknown) => {
    assert.ok(e instanceof PluginCallError, String(e));
    assert.equal((e.data as { code?: string } | undefined)?.code, "STREAM_CHUNK_TOO_LARGE");
    assert.match(e.message, /at most 262016 \(the host's max_chunk_bytes, 262144/);
    assert.match(e.message, /smaller chunks, or .* a smaller window or a larger maxBufferedBytes/);
    return true;
  });
  assert.equal(
    (await Array.fromAsync(h.host.stream("streamer", "count", big, { window: 16 }))).length,
    3,
  );
  const roomy = h.host.stream("streamer", "count", big, { maxBufferedBytes: 64 << 20 });
  assert.equal((await Array.fromAsync(roomy)).length, 3);
  assert.throws(
    () => h.host.stream("streamer", "count", {}, { window: 64, maxBufferedBytes: 1000 }),
    RangeError,
  );
});

Deno.test("the host ends a stream whose chunk is over max_chunk_bytes unread; the plugin serves on", async () => {
  await using h = await streamerHost();
  const pid = h.pid();
  // 1 MiB in the SDK's form where 256 KiB were asked for (before: taken, up to max_line_bytes).
  const stream = h.host.stream("streamer", "rogue", { mode: "huge" }, { timeoutMs: 20_000 });
  await assert.rejects(stream.result, isProtocol(/longer than max_chunk_bytes \(262144 bytes\)/));
  assert.equal(stream.received, 0);
  // 300 KiB in another key order: charged to the log budget (which holds it), then refused.
  const other = h.host.stream("streamer", "rogue", { mode: "huge-charged" }, { timeoutMs: 20_000 });
  await assert.rejects(other.result, isProtocol(/chunk 0 in a line of \d+ bytes, over max_chunk/));
  assert.equal(other.received, 0);
  assert.equal(h.pid(), pid);
  assert.equal((await Array.fromAsync(h.host.stream("streamer", "count", { n: 5 }))).length, 5);
});

Deno.test("a stream that times out unread is STREAM_NOT_READ and does not open the breaker", async () => {
  await using h = await streamerHost({
    defaults: { timeout_ms: 1_000, circuit_breaker: { failure_threshold: 1 } },
  });
  // The policy's own deadline (a shorter caller deadline never counted): nothing is read, so
  // the plugin spends its credit and waits until the deadline.
  const stream = h.host.stream("streamer", "count", { n: 1_000 }, { window: 4 });
  assert.ok(await waitFor(() => stream.received === 4, 5_000), `got ${stream.received}`);
  await assert.rejects(stream.result, (e: unknown) => {
    assert.ok(e instanceof StreamError, String(e));
    assert.equal(e.code, "STREAM_NOT_READ");
    assert.match(e.message, /did not read/);
    return true;
  });
  // Before: PLUGIN_TIMEOUT, counted, and with a threshold of 1 the next call was CIRCUIT_OPEN.
  assert.equal(
    typeof ((await h.host.call("streamer", "stats")) as { calls: number }).calls,
    "number",
  );
  // A stream that times out while the plugin had credit is still the plugin's timeout.
  const slow = h.host.stream("streamer", "stall", {}, { window: 4 });
  await assert.rejects(slow.result, { code: "PLUGIN_TIMEOUT" });
});

Deno.test("many streams at once are bounded by the bulkhead: each holds a slot until it ends", async () => {
  await using h = await streamerHost({ defaults: { bulkhead: { max_in_flight: 3, queue: 0 } } });
  const open = [0, 1, 2].map(() => h.host.stream("streamer", "forever", {}, { window: 2 }));
  for (const s of open) await s.next();
  const extra = h.host.stream("streamer", "forever", {}, { window: 2 });
  await assert.rejects(extra.result, { code: "BULKHEAD_FULL" });
  await open[0]![Symbol.asyncDispose]();
  const again = h.host.stream("streamer", "forever", {}, { window: 2 });
  await again.next();
  for (const s of [...open, again]) await s[Symbol.asyncDispose]();
});

Deno.test("a chunk whose value would take many times its bytes in memory ends its stream", async () => {
  await using h = await streamerHost();
  // 60,000 empty objects: 180 KB of JSON (within the 256 KiB max_chunk_bytes), some 3 MB parsed.
  const stream = h.host.stream("streamer", "rogue", { mode: "amp" });
  await assert.rejects(stream.next(), isProtocol(/holds so many objects and arrays/));
  // Chunks as big on the wire in few values pass: a 150 KB string each.
  const ok = h.host.stream("streamer", "count", { n: 2, size: 150_000 });
  let n = 0;
  for await (const _ of ok) n++;
  assert.equal(n, 2);
  assert.equal(await h.host.call("streamer", "stats").then(() => "serving"), "serving");
});
