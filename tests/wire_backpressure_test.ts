/**
 * Issue 11, back-pressure with a real plugin process: a plugin that stops reading its stdin
 * while the host sends it 10,000 calls does not grow the host's memory without bound. Calls
 * beyond the bulkhead are refused (or queued within its limit), what was written waits in the
 * bounded write queue, and the plugin serves again once it reads. The host runs in this
 * process; its resident size is sampled from /proc.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";

const MIB = 1024 * 1024;

function rss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) * 1024;
}

Deno.test({
  name:
    "a plugin that stops reading stdin while the host sends 10,000 calls keeps host RSS bounded",
  ignore: Deno.build.os !== "linux", // /proc
  async fn() {
    await using home = await makeHome({
      watcher: { enabled: false },
      logging: { level: "error", format: "json" },
      defaults: { bulkhead: { max_in_flight: 64, queue: 256 } },
    });
    await home.addPlugin(join(FIXTURE_PLUGINS, "wire_deaf"));
    await using host = await home.startHost();
    const pid = await host.call("wire-deaf", "pid");
    // 64 KiB each: 10,000 of them would be 640 MiB if the host kept them all.
    const params = { text: "d".repeat(64 * 1024) };
    for (let i = 0; i < 200; i++) await host.call("wire-deaf", "echo", params); // warm
    const base = rss();
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 20);
    const outcomes = new Map<string, number>();
    try {
      await host.call("wire-deaf", "deafen", { ms: 3_000 });
      const calls = Array.from(
        { length: 10_000 },
        () =>
          host.call("wire-deaf", "echo", params, { timeoutMs: 20_000 }).then(
            () => "ok",
            (e: { code?: string }) => e.code ?? "error",
          ),
      );
      peak = Math.max(peak, rss());
      for (const outcome of await Promise.all(calls)) {
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
      peak = Math.max(peak, rss());
    } finally {
      clearInterval(sampler);
    }
    const summary = `${JSON.stringify(Object.fromEntries(outcomes))}, peak RSS +${
      Math.round((peak - base) / MIB)
    } MiB`;
    console.log(summary);
    // At most max_in_flight + queue calls were taken; the others were refused at once.
    assert.ok((outcomes.get("BULKHEAD_FULL") ?? 0) >= 10_000 - 64 - 256, summary);
    assert.equal(outcomes.get("ok"), 10_000 - (outcomes.get("BULKHEAD_FULL") ?? 0), summary);
    assert.ok(peak - base < 200 * MIB, summary);
    // It reads again: the same process serves.
    assert.deepEqual(await host.call("wire-deaf", "echo", [1]), [1]);
    assert.equal(await host.call("wire-deaf", "pid"), pid);
  },
});

Deno.test({
  name:
    "when the bulkhead lets 10,000 calls through to a plugin that does not read, the write queue's bound stops it instead of holding them",
  ignore: Deno.build.os !== "linux", // /proc
  async fn() {
    await using home = await makeHome({
      watcher: { enabled: false },
      logging: { level: "error", format: "json" },
      defaults: { bulkhead: { max_in_flight: 10_000, queue: 0 }, retry: { max_attempts: 1 } },
    });
    await home.addPlugin(join(FIXTURE_PLUGINS, "wire_deaf"));
    await using host = await home.startHost();
    const pid = await host.call("wire-deaf", "pid");
    const params = { text: "d".repeat(64 * 1024) };
    for (let i = 0; i < 200; i++) await host.call("wire-deaf", "echo", params);
    const base = rss();
    let peak = base;
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 20);
    const outcomes = new Map<string, number>();
    try {
      await host.call("wire-deaf", "deafen", { ms: 60_000 });
      const calls = Array.from(
        { length: 10_000 },
        () =>
          host.call("wire-deaf", "echo", params, { timeoutMs: 30_000 }).then(
            () => "ok",
            (e: { code?: string }) => e.code ?? "error",
          ),
      );
      peak = Math.max(peak, rss());
      for (const outcome of await Promise.all(calls)) {
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
    } finally {
      clearInterval(sampler);
    }
    const summary = `${JSON.stringify(Object.fromEntries(outcomes))}, peak RSS +${
      Math.round((peak - base) / MIB)
    } MiB`;
    console.log(summary);
    // 640 MiB of requests; the write queue holds at most 64 MiB of them, then the host kills
    // the plugin (it does not read its stdin) and every call fails instead of waiting.
    assert.equal(outcomes.get("ok") ?? 0, 0, summary);
    assert.ok(peak - base < 400 * MIB, summary);
    const restarted = await waitFor(async () => {
      try {
        return await host.call("wire-deaf", "pid") !== pid;
      } catch {
        return false;
      }
    }, 20_000);
    assert.ok(restarted, summary);
  },
});
