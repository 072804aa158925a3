/**
 * Streaming (issue 16, part 4) with a real plugin process: `host.stream()` yields every chunk in
 * order, cancel stops the producer, credit keeps a consumer that stops reading from growing the
 * host or the plugin, protocol violations end only their stream, and a plain call of a
 * streaming method is refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { PluginCallError, StreamError } from "../src/runtime/mod.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";

interface Stats {
  produced: number;
  closed: number;
  running: number;
  calls: number;
}

async function streamerHost(config: Record<string, unknown> = {}) {
  const home = await makeHome({ watcher: { enabled: false }, ...config });
  await home.addPlugin(join(FIXTURE_PLUGINS, "streamer"));
  await home.addPlugin(join(FIXTURE_PLUGINS, "wire_ndjson"));
  const host = await home.startHost();
  return {
    host,
    stats: () => host.call("streamer", "stats") as Promise<Stats>,
    async [Symbol.asyncDispose]() {
      await host[Symbol.asyncDispose]();
      await home[Symbol.asyncDispose]();
    },
  };
}

Deno.test("host.stream() delivers 10,000 chunks complete and in order, then the result", async () => {
  await using h = await streamerHost();
  const stream = h.host.stream("streamer", "count", { n: 10_000 }, { window: 32 });
  let next = 0;
  for await (const chunk of stream) {
    assert.deepEqual(chunk, { i: next });
    next++;
    assert.ok(stream.buffered <= 32, `${stream.buffered} chunks buffered, window 32`);
  }
  assert.equal(next, 10_000);
  assert.deepEqual(await stream.result, { total: 10_000 });
  const stats = await h.stats();
  assert.equal(stats.produced, 10_000);
  assert.equal(stats.closed, 1);
});

Deno.test("breaking out after 100 chunks cancels the stream and stops the producer", async () => {
  await using h = await streamerHost();
  const window = 16;
  const stream = h.host.stream("streamer", "count", { n: 1_000_000 }, { window });
  let seen = 0;
  for await (const _ of stream) {
    if (++seen === 100) break;
  }
  await assert.rejects(stream.result, { code: "PLUGIN_CALL_CANCELLED" });
  // The generator's finally ran: the SDK called its return() on $/cancel.
  assert.ok(await waitFor(async () => (await h.stats()).closed === 1, 5_000), "never closed");
  const { produced, running } = await h.stats();
  assert.equal(running, 0);
  assert.ok(produced >= 100 && produced <= 100 + window, `produced ${produced}`);
  // Stopped for good: nothing more is produced later.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal((await h.stats()).produced, produced);
});

Deno.test("aborting the signal cancels an endless stream; its producer is closed", async () => {
  await using h = await streamerHost();
  const controller = new AbortController();
  const stream = h.host.stream("streamer", "forever", {}, { signal: controller.signal });
  let seen = 0;
  await assert.rejects(async () => {
    for await (const _ of stream) if (++seen === 5) controller.abort();
  }, { code: "PLUGIN_CALL_CANCELLED" });
  assert.ok(await waitFor(async () => (await h.stats()).closed === 1, 5_000), "never closed");
});

Deno.test("a consumer that stops reading pauses the plugin within the credit window", async () => {
  await using h = await streamerHost();
  const window = 16;
  // 64 KiB chunks: 10,000 of them would be 640 MiB if anything buffered them all.
  const stream = h.host.stream("streamer", "count", { n: 10_000, size: 64 * 1024 }, { window });
  for (let i = 0; i < 5; i++) {
    const r = await stream.next();
    assert.equal((r.value as { i: number }).i, i);
  }
  // The plugin uses up its credit, then waits: 5 read, at most the window more.
  assert.ok(await waitFor(() => stream.received === window, 5_000), `got ${stream.received}`);
  await new Promise((r) => setTimeout(r, 300));
  const { produced } = await h.stats();
  assert.ok(produced <= window, `produced ${produced} with a window of ${window}`);
  assert.equal(stream.received, window);
  assert.equal(stream.buffered, window - 5);
  // Reading again resumes it.
  let more = 0;
  for await (const _ of stream) if (++more === 100) break;
  assert.equal(more, 100);
});

Deno.test("ctx.progress() streams chunks and the handler's value is the result", async () => {
  await using h = await streamerHost();
  const stream = h.host.stream("streamer", "progress", { n: 300 }, { window: 4 });
  const steps: number[] = [];
  for await (const c of stream) steps.push((c as { step: number }).step);
  assert.deepEqual(steps, Array.from({ length: 300 }, (_, i) => i));
  assert.equal(await stream.result, "done");
});

Deno.test("a plain call of a streaming method is refused before the plugin sees it", async () => {
  await using h = await streamerHost();
  const before = (await h.stats()).calls;
  await assert.rejects(h.host.call("streamer", "count", { n: 3 }), (e: unknown) => {
    assert.ok(e instanceof StreamError);
    assert.equal(e.code, "STREAM_REQUIRED");
    assert.match(e.message, /host\.stream\(\)/);
    assert.match(e.message, /text\/event-stream/);
    return true;
  });
  assert.equal((await h.stats()).calls, before);
  // A method that is not declared `stream: true` but returns a generator: the SDK refuses it.
  await assert.rejects(h.host.call("streamer", "undeclared"), (e: unknown) => {
    assert.ok(e instanceof PluginCallError);
    assert.match(e.message, /streams its result/);
    return true;
  });
  // And streaming a method that answers plainly gives its value as the result, no chunks.
  const stats = h.host.stream("streamer", "stats");
  assert.deepEqual(await Array.fromAsync(stats), []);
  assert.equal(typeof ((await stats.result) as Stats).produced, "number");
});

Deno.test("a plugin whose SDK does not stream is refused with STREAM_NOT_SUPPORTED", async () => {
  await using h = await streamerHost();
  const stream = h.host.stream("wire-ndjson", "echo", { a: 1 });
  await assert.rejects(stream.next(), { code: "STREAM_NOT_SUPPORTED" });
  await assert.rejects(stream.result, { code: "STREAM_NOT_SUPPORTED" });
  assert.deepEqual(await h.host.call("wire-ndjson", "echo", { a: 1 }), { a: 1 });
});

Deno.test("chunks past the credit end that stream only; chunks of no stream are dropped", async () => {
  await using logs = await captureLogs();
  await using h = await streamerHost();
  const pid = h.host.plugins().find((p) => p.name === "streamer")!.pid;
  const flood = h.host.stream("streamer", "rogue", { mode: "flood", n: 2000 }, { window: 8 });
  // Not read yet: no credit beyond the window was granted, so chunk 8 is the violation.
  const isViolation = (e: unknown) => {
    assert.ok(e instanceof StreamError);
    assert.equal(e.code, "STREAM_PROTOCOL");
    assert.match(e.message, /chunk 8 without credit/);
    return true;
  };
  await assert.rejects(flood.result, isViolation);
  assert.equal(flood.received, 8);
  let got = 0;
  await assert.rejects(async () => {
    for await (const _ of flood) got++;
  }, isViolation);
  assert.equal(got, 8, "the chunks before the violation are delivered first");
  const skip = h.host.stream("streamer", "rogue", { mode: "skip" });
  await assert.rejects(Array.fromAsync(skip), /chunk 1 where chunk 0 was due/);
  assert.equal(await h.host.call("streamer", "junk"), "ok");
  // Same process, still serving, and streaming again.
  assert.equal(h.host.plugins().find((p) => p.name === "streamer")!.pid, pid);
  const again = h.host.stream("streamer", "count", { n: 50 });
  assert.equal((await Array.fromAsync(again)).length, 50);
  const warnings = logs.records.filter((r) => r.level === "warning").map((r) => String(r.message));
  assert.ok(warnings.some((m) => /no stream in flight/.test(m)), warnings.join("\n"));
});

Deno.test("timeoutMs ends a whole stream and idleTimeoutMs a silent one; producers are closed", async () => {
  await using h = await streamerHost();
  const whole = h.host.stream("streamer", "forever", {}, { timeoutMs: 300 });
  await assert.rejects(Array.fromAsync(whole), { code: "PLUGIN_TIMEOUT" });
  assert.ok(await waitFor(async () => (await h.stats()).closed === 1, 5_000), "never closed");
  const idle = h.host.stream("streamer", "stall", {}, { idleTimeoutMs: 200 });
  assert.equal((await idle.next()).value, 0);
  await assert.rejects(idle.next(), (e: unknown) => {
    assert.ok(e instanceof StreamError);
    assert.equal(e.code, "STREAM_IDLE");
    return true;
  });
  assert.ok(await waitFor(async () => (await h.stats()).closed === 2, 5_000), "never closed");
});

Deno.test("a chunk that fails the method's chunk schema ends the stream in the plugin", async () => {
  await using h = await streamerHost();
  const stream = h.host.stream("streamer", "bad");
  assert.equal((await stream.next()).value, 1);
  await assert.rejects(stream.next(), (e: unknown) => {
    assert.ok(e instanceof PluginCallError);
    assert.match(e.message, /chunk 1 of "bad" fails its methods\.bad\.chunk schema: chunk: /);
    return true;
  });
});

Deno.test("a generator's final result is checked against the method's result schema after its chunks", async () => {
  await using h = await streamerHost();
  const ok = h.host.stream("streamer", "tally", { n: 4 });
  const chunks: unknown[] = [];
  for await (const c of ok) chunks.push(c);
  assert.deepEqual(chunks, [0, 1, 2, 3]);
  assert.deepEqual(await ok.result, { sum: 6 });
  const lie = h.host.stream("streamer", "tally", { n: 2, lie: true });
  const got: unknown[] = [];
  await assert.rejects(
    (async () => {
      for await (const c of lie) got.push(c);
    })(),
    (e: unknown) => {
      assert.ok(e instanceof PluginCallError, String(e));
      assert.match(e.message, /sum/);
      assert.equal((e.data as { code?: string } | undefined)?.code, "INVALID_RESULT");
      return true;
    },
  );
  assert.deepEqual(got, [0, 1]);
});

Deno.test("a stream holds its bulkhead slot and counts as in flight for its whole life", async () => {
  await using h = await streamerHost({ defaults: { bulkhead: { max_in_flight: 1, queue: 0 } } });
  const stream = h.host.stream("streamer", "forever", {}, { window: 2 });
  await stream.next();
  await assert.rejects(h.host.call("streamer", "stats"), { code: "BULKHEAD_FULL" });
  const series = 'plugin="streamer",method="forever"';
  assert.ok(h.host.metrics.prometheus().includes(`plugsconc_calls_in_flight{${series}} 1`));
  await stream[Symbol.asyncDispose]();
  assert.equal(typeof (await h.stats()).produced, "number");
  const text = h.host.metrics.prometheus();
  assert.ok(text.includes(`plugsconc_calls_in_flight{${series}} 0`), text);
  assert.ok(text.includes(`plugsconc_calls_total{${series}} 1`));
});

Deno.test("`call` of a streaming method prints each chunk as a JSON line, then the result", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "streamer"));
  const io = memoryIo();
  const code = await runCli(
    ["--config", home.configPath, "call", "streamer", "count", '{"n":3}'],
    io,
  );
  assert.equal(code, 0, io.stderr);
  assert.deepEqual(io.stdout.trim().split("\n").map((l) => JSON.parse(l)), [
    { i: 0 },
    { i: 1 },
    { i: 2 },
    { total: 3 },
  ]);
});
