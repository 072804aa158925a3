/**
 * The resilient call pipeline with real plugin processes (`behave`, whose behaviour each test
 * sets per call): retries, idempotency, deadlines, the circuit breaker, the rate limit, the
 * bulkhead, several instances with round-robin and crash recovery, and health checks.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { BulkheadFullError, CircuitOpenError, RateLimitedError } from "../src/pipeline/mod.ts";
import { PluginCallError, PluginTimeoutError } from "../src/runtime/mod.ts";
import type { PluginHost } from "../src/host/mod.ts";
import { FIXTURE_PLUGINS, makeHome, type TestHome, waitFor } from "./_helpers.ts";

const BEHAVE = join(FIXTURE_PLUGINS, "behave");

/** A home with behave and these `defaults` (no watcher; fast restarts). */
async function home(defaults: Record<string, unknown> = {}): Promise<TestHome> {
  const h = await makeHome({
    watcher: { enabled: false },
    defaults: { restart: { initial_backoff_ms: 20 }, ...defaults },
  });
  await h.addPlugin(BEHAVE);
  return h;
}

/** Calls a method on one instance's process directly, past the pipeline. */
function direct(host: PluginHost, instance: number, method: string, params: unknown = {}) {
  return host.supervisors("behave")[instance]!.process!.call(method, params);
}

async function counts(host: PluginHost, instance = 0): Promise<Record<string, number>> {
  return await direct(host, instance, "counts", {}) as Record<string, number>;
}

const NO_BREAKER = { circuit_breaker: { enabled: false } };

Deno.test("an idempotent method that fails twice is retried and succeeds", async () => {
  await using h = await home({ ...NO_BREAKER, retry: { max_attempts: 3, initial_delay_ms: 5 } });
  await using host = await h.startHost();
  await direct(host, 0, "setMode", { failNext: 2 });
  assert.deepEqual(await host.call("behave", "echo", { n: 1 }), { n: 1 });
  assert.equal((await counts(host)).echo, 3, "ran three times");
  assert.equal(host.metrics.counter("plugsconc_retries_total", "", ["plugin"]).get(["behave"]), 2);
});

Deno.test("retries are exhausted after max_attempts and the last error reaches the caller", async () => {
  await using h = await home({ ...NO_BREAKER, retry: { max_attempts: 2, initial_delay_ms: 5 } });
  await using host = await h.startHost();
  await direct(host, 0, "setMode", { failNext: 5 });
  await assert.rejects(host.call("behave", "echo", {}), PluginCallError);
  assert.equal((await counts(host)).echo, 2);
});

Deno.test("a method not marked idempotent is never retried", async () => {
  await using h = await home({ ...NO_BREAKER, retry: { max_attempts: 5, initial_delay_ms: 5 } });
  await using host = await h.startHost();
  await direct(host, 0, "setMode", { failNext: 1 });
  await assert.rejects(host.call("behave", "mutate", { x: 1 }), (e: unknown) => {
    assert.ok(e instanceof PluginCallError, String(e));
    assert.match(e.message, /failing as told/);
    return true;
  });
  assert.equal((await counts(host)).mutate, 1, "the plugin ran it once");
  assert.deepEqual(await host.call("behave", "mutate", { x: 2 }), { x: 2 });
});

Deno.test("a retry whose backoff would pass the deadline is not made: the real error comes at once", async () => {
  await using h = await home({
    ...NO_BREAKER,
    retry: { max_attempts: 10, initial_delay_ms: 400, max_delay_ms: 400, multiplier: 1 },
  });
  await using host = await h.startHost();
  await direct(host, 0, "setMode", { failNext: 100 });
  const t0 = performance.now();
  await assert.rejects(
    host.call("behave", "echo", {}, { timeoutMs: 1000 }),
    (e: unknown) => e instanceof PluginCallError, // not a timeout: the last real failure
  );
  const elapsed = performance.now() - t0;
  const ran = (await counts(host)).echo!;
  // Each backoff is 200..400 ms (half jitter of 400): at most five attempts fit in 1000 ms,
  // far fewer than max_attempts, and the call ends before its deadline.
  assert.ok(ran >= 2 && ran <= 5, `ran ${ran} times`);
  assert.ok(elapsed < 1000, `ended after ${elapsed} ms, past its 1000 ms deadline`);
});

Deno.test("the breaker opens after the threshold, fails fast, half-opens after recovery and closes after successes", async () => {
  await using h = await home({
    retry: { max_attempts: 1 },
    circuit_breaker: { failure_threshold: 3, recovery_ms: 400, success_threshold: 2 },
  });
  await using host = await h.startHost();
  await direct(host, 0, "setMode", { failNext: 3 });
  for (let i = 0; i < 3; i++) {
    await assert.rejects(host.call("behave", "echo", {}), PluginCallError);
  }
  assert.equal(host.plugins()[0]!.breaker, "open");
  await assert.rejects(host.call("behave", "echo", {}), (e: unknown) => {
    assert.ok(e instanceof CircuitOpenError, String(e));
    assert.equal(e.code, "CIRCUIT_OPEN");
    return true;
  });
  assert.equal((await counts(host)).echo, 3, "an open breaker does not call the plugin");
  assert.equal(
    host.metrics.counter("plugsconc_breaker_trips_total", "", ["plugin"]).get(["behave"]),
    1,
  );
  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(await host.call("behave", "echo", { probe: 1 }), { probe: 1 });
  assert.equal(host.plugins()[0]!.breaker, "half-open", "one success is not enough to close");
  assert.deepEqual(await host.call("behave", "echo", { probe: 2 }), { probe: 2 });
  assert.equal(host.plugins()[0]!.breaker, "closed");
});

Deno.test("the ratio breaker opens when failures pass the ratio over its window, once enough calls were made", async () => {
  await using h = await home({
    retry: { max_attempts: 1 },
    circuit_breaker: { mode: "ratio", failure_ratio: 0.5, window_ms: 5000, min_requests: 6 },
  });
  await using host = await h.startHost();
  await direct(host, 0, "setMode", { failNext: 4 });
  // Four failures alone are below min_requests: still closed.
  for (let i = 0; i < 4; i++) {
    await assert.rejects(host.call("behave", "echo", {}), PluginCallError);
  }
  assert.equal(host.plugins()[0]!.breaker, "closed");
  await host.call("behave", "echo", {});
  await host.call("behave", "echo", {});
  await direct(host, 0, "setMode", { failNext: 1 });
  await assert.rejects(host.call("behave", "echo", {}), PluginCallError); // 5 of 7 failed
  assert.equal(host.plugins()[0]!.breaker, "open");
});

Deno.test("the rate limit admits the burst, then refuses with a retry-after, then admits the rate", async () => {
  await using h = await home({ rate_limit: { rps: 5, burst: 3 } });
  await using host = await h.startHost();
  for (let i = 0; i < 3; i++) await host.call("behave", "echo", [i]);
  const e = await host.call("behave", "echo", [3]).then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof RateLimitedError, String(e));
  assert.ok(e.retryAfterMs > 0 && e.retryAfterMs <= 200, `retry after ${e.retryAfterMs}`);
  await new Promise((r) => setTimeout(r, e.retryAfterMs + 20));
  assert.deepEqual(await host.call("behave", "echo", [4]), [4]);
  assert.equal(
    host.metrics.counter("plugsconc_rate_limited_total", "", ["plugin"]).get(["behave"]),
    1,
  );
});

Deno.test("the bulkhead runs max_in_flight, queues up to its queue, and refuses the next", async () => {
  await using h = await home({ bulkhead: { max_in_flight: 1, queue: 1 }, ...NO_BREAKER });
  await using host = await h.startHost();
  const first = host.call("behave", "sleep", { ms: 500 });
  const second = host.call("behave", "sleep", { ms: 10 });
  await assert.rejects(host.call("behave", "sleep", { ms: 10 }), (e: unknown) => {
    assert.ok(e instanceof BulkheadFullError, String(e));
    assert.equal(e.code, "BULKHEAD_FULL");
    return true;
  });
  assert.deepEqual(await Promise.all([first, second]), ["slept", "slept"]);
});

Deno.test("a call queued in the bulkhead stops waiting at its deadline", async () => {
  await using h = await home({ bulkhead: { max_in_flight: 1, queue: 4 }, ...NO_BREAKER });
  await using host = await h.startHost();
  let firstDone = false;
  const first = host.call("behave", "sleep", { ms: 1500 }).finally(() => (firstDone = true));
  await assert.rejects(
    host.call("behave", "sleep", { ms: 10 }, { timeoutMs: 200 }),
    PluginTimeoutError,
  );
  assert.equal(firstDone, false, "the queued call waited for the slot instead of its deadline");
  assert.equal(await first, "slept");
});

Deno.test("a call that timed out in the bulkhead's queue frees its place for the next", async () => {
  await using h = await home({ bulkhead: { max_in_flight: 1, queue: 1 }, ...NO_BREAKER });
  await using host = await h.startHost();
  const first = host.call("behave", "sleep", { ms: 800 });
  await assert.rejects(
    host.call("behave", "sleep", { ms: 10 }, { timeoutMs: 100 }),
    PluginTimeoutError,
  );
  // The queue has room again: this one waits for the first and runs.
  assert.equal(await host.call("behave", "sleep", { ms: 10 }, { timeoutMs: 5000 }), "slept");
  assert.equal(await first, "slept");
});

Deno.test("invalid params and calls cancelled by the caller do not trip the breaker", async () => {
  await using h = await home({
    retry: { max_attempts: 3, initial_delay_ms: 5 },
    circuit_breaker: { failure_threshold: 2, recovery_ms: 60_000 },
  });
  await using host = await h.startHost();
  for (let i = 0; i < 3; i++) {
    // A string is not JSON-RPC params: the plugin answers -32602 (the caller's mistake).
    await assert.rejects(host.call("behave", "echo", "not params"), PluginCallError);
    const c = new AbortController();
    const p = host.call("behave", "sleep", { ms: 5000 }, { signal: c.signal });
    setTimeout(() => c.abort(new Error("caller gave up")), 20);
    await assert.rejects(p);
  }
  assert.equal(host.plugins()[0]!.breaker, "closed");
  assert.equal((await counts(host)).echo ?? 0, 0, "invalid params were retried");
});

Deno.test("a half-open probe cancelled by its caller keeps the breaker open", async () => {
  await using h = await home({
    retry: { max_attempts: 1 },
    circuit_breaker: { failure_threshold: 1, recovery_ms: 200 },
  });
  await using host = await h.startHost();
  await direct(host, 0, "setMode", { failNext: 1 });
  await assert.rejects(host.call("behave", "echo", {}), PluginCallError);
  assert.equal(host.plugins()[0]!.breaker, "open");
  await new Promise((r) => setTimeout(r, 300));
  const c = new AbortController();
  const probe = host.call("behave", "sleep", { ms: 5000 }, { signal: c.signal });
  setTimeout(() => c.abort(new Error("caller gave up")), 50);
  await assert.rejects(probe);
  assert.equal(host.plugins()[0]!.breaker, "open", "a probe without a verdict closed it");
});

Deno.test("a deadline reaches the handler as $/cancel and the call fails with PluginTimeoutError", async () => {
  await using h = await home({ ...NO_BREAKER });
  await using host = await h.startHost();
  await assert.rejects(
    host.call("behave", "sleep", { ms: 10_000 }, { timeoutMs: 200 }),
    PluginTimeoutError,
  );
  assert.ok(
    await waitFor(
      async () => (await host.call("behave", "cancelled") as unknown[]).length === 1,
      5000,
    ),
    "the handler saw no cancellation",
  );
});

Deno.test("round-robin spreads calls evenly across 3 instances", async () => {
  await using h = await home({ instances: 3 });
  await using host = await h.startHost();
  const pids = await Promise.all(
    Array.from({ length: 30 }, () => host.call("behave", "pid") as Promise<number>),
  );
  const per = new Map<number, number>();
  for (const p of pids) per.set(p, (per.get(p) ?? 0) + 1);
  assert.equal(per.size, 3, JSON.stringify([...per]));
  assert.deepEqual([...per.values()], [10, 10, 10]);
  assert.deepEqual(
    [...per.keys()].sort(),
    host.supervisors("behave").map((s) => s.process!.pid).sort(),
  );
});

Deno.test("one of 3 instances crashing loses no idempotent call: they are retried on the others", async () => {
  await using h = await home({
    instances: 3,
    ...NO_BREAKER,
    retry: { max_attempts: 3, initial_delay_ms: 5 },
  });
  await using host = await h.startHost();
  for (let i = 0; i < 3; i++) await direct(host, i, "setMode", { delayMs: 300 });
  const calls = Array.from({ length: 30 }, (_, i) => host.call("behave", "echo", { i }));
  await new Promise((r) => setTimeout(r, 100)); // every call is in flight, ten per instance
  const victim = host.supervisors("behave")[1]!;
  const victimPid = victim.process!.pid;
  void victim.process!.call("crash", {}).catch(() => {});
  const results = await Promise.allSettled(calls);
  const failed = results.filter((r) => r.status === "rejected");
  assert.deepEqual(failed, [], "calls were lost");
  assert.deepEqual(
    results.map((r) => (r as PromiseFulfilledResult<unknown>).value),
    calls.map((_, i) => ({ i })),
  );
  assert.ok(
    await waitFor(() => victim.state === "ready" && victim.process!.pid !== victimPid, 15_000),
  );
  assert.equal(host.plugins()[0]!.health, "healthy");
});

Deno.test("an unhealthy instance leaves the rotation, is restarted after failure_limit checks, and comes back", async () => {
  await using h = await home({
    instances: 2,
    health: { interval_ms: 100, timeout_ms: 500, failure_limit: 3 },
  });
  await using host = await h.startHost();
  const [sick, well] = host.supervisors("behave");
  const sickPid = sick!.process!.pid;
  await direct(host, 0, "setMode", { health: "unhealthy" });
  assert.ok(
    await waitFor(() => host.plugins()[0]!.instances[0]!.health === "unhealthy", 5000),
    JSON.stringify(host.plugins()[0]!.instances),
  );
  assert.equal(host.plugins()[0]!.health, "degraded");
  // Out of rotation: no call reaches it while it is unhealthy.
  const pids = await Promise.all(Array.from({ length: 10 }, () => host.call("behave", "pid")));
  assert.ok(!pids.includes(sickPid), `a call reached the unhealthy instance: ${pids}`);
  assert.ok(pids.includes(well!.process!.pid));
  // After three failed checks it is restarted; the new process is healthy and serves again.
  assert.ok(
    await waitFor(() => sick!.state === "ready" && sick!.process!.pid !== sickPid, 15_000),
    "not restarted",
  );
  assert.ok(await waitFor(() => host.plugins()[0]!.health === "healthy", 5000));
  const after = new Set(
    await Promise.all(Array.from({ length: 10 }, () => host.call("behave", "pid"))),
  );
  assert.ok(after.has(sick!.process!.pid), "the restarted instance serves again");
  assert.ok(
    host.metrics.counter("plugsconc_health_check_failures_total", "", ["plugin"]).get(["behave"]) >=
      3,
  );
  assert.equal(host.health().plugins.behave?.status, "healthy");
});
