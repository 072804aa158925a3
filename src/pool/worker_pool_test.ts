import assert from "node:assert/strict";
import { join } from "node:path";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { type JobResult, PoolError, WorkerPool } from "./mod.ts";

const JOBS = new URL("./_test_jobs.ts", import.meta.url);

/** Polls `check` until it is true; fails after `timeoutMs` (generous: the CI box is shared). */
async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function fileSays(file: string, text: string): Promise<boolean> {
  try {
    return (await Deno.readTextFile(file)).includes(text);
  } catch {
    return false;
  }
}

async function tempDir(): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: "plugsconc-pool-" });
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

function assertAddsUp(pool: WorkerPool): void {
  const m = pool.metrics();
  assert.equal(m.submitted, m.succeeded + m.failed + m.cancelled + m.pending, JSON.stringify(m));
  assert.equal(m.waitMs.count, m.succeeded + m.failed + m.cancelled);
  assert.equal(m.runMs.count, m.succeeded + m.failed + m.cancelled);
}

Deno.test("submit() runs many jobs across every worker with correct results", async () => {
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const results = await Promise.all(
    Array.from({ length: 300 }, (_, i) => pool.submit({ module: JOBS, fn: "square", input: i })),
  ) as JobResult<{ value: number; worker: string }>[];
  assert.deepEqual(
    results.map((r) => r.value?.value),
    Array.from({ length: 300 }, (_, i) => i * i),
  );
  assert.ok(results.every((r) => r.ok && r.status === "succeeded" && r.attempts === 1));
  const workers = new Set(results.map((r) => r.value!.worker.split(":")[0]));
  assert.deepEqual([...workers].sort(), ["plugsconc-pool-1", "plugsconc-pool-2"]);
  const m = pool.metrics();
  assert.equal(m.submitted, 300);
  assert.equal(m.succeeded, 300);
  assert.equal(m.workers, 2);
  assert.equal(m.queueDepth, 0);
  assertAddsUp(pool);
});

Deno.test("a worker imports a job module once and reuses it", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const counts = [];
  for (let i = 0; i < 3; i++) counts.push(await pool.run({ module: JOBS, fn: "importCount" }));
  assert.deepEqual(counts, [1, 1, 1]);
});

Deno.test("a failing job is retried with backoff and then succeeds", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const result = await pool.submit({
    module: JOBS,
    fn: "flaky",
    input: { succeedOn: 3 },
    maxRetries: 3,
    retryDelayMs: 20,
    retryMultiplier: 2,
  });
  assert.equal(result.status, "succeeded", result.error?.message);
  assert.equal(result.value, 3);
  assert.equal(result.attempts, 3);
  const m = pool.metrics();
  assert.equal(m.retried, 2);
  assert.equal(m.succeeded, 1);
  assert.equal(m.failed, 0);
  assert.equal(m.attempts, 3);
});

Deno.test("a job whose retries are exhausted fails with the last error", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1, maxRetries: 2, retryDelayMs: 5 });
  const result = await pool.submit({ module: JOBS, fn: "flaky", input: { succeedOn: 10 } });
  assert.equal(result.status, "failed");
  assert.equal(result.attempts, 3);
  assert.equal(result.error?.message, "attempt 3 failed");
  assert.equal(pool.metrics().retried, 2);
  assert.equal(pool.metrics().failed, 1);
});

Deno.test("a thrown error becomes a failed result with its message, code and stack", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const result = await pool.submit({ module: JOBS, fn: "fail", input: { message: "bad input" } });
  assert.equal(result.status, "failed");
  assert.equal(result.ok, false);
  assert.equal(result.error?.name, "Error");
  assert.equal(result.error?.message, "bad input");
  assert.equal(result.error?.code, "E_TEST");
  assert.match(result.error?.stack ?? "", /at .*fail .*_test_jobs\.ts/);
  const thrown = await pool.run({ module: JOBS, fn: "fail", input: { message: "again" } })
    .then(() => undefined, (e: unknown) => e);
  assert.ok(thrown instanceof PoolError);
  assert.equal(thrown.code, "POOL_JOB_FAILED");
  assert.match(
    thrown.message,
    /fail of file:.*_test_jobs\.ts failed after 1 attempt\(s\): Error: again/,
  );
  assert.equal((thrown.cause as Error).message, "again");
  // The pool keeps working.
  assert.equal(await pool.run({ module: JOBS, fn: "echo", input: "still here" }), "still here");
});

Deno.test("a busy-looping job that times out has its worker killed and replaced", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1, killGraceMs: 100 });
  const result = await pool.submit({
    module: JOBS,
    fn: "spin",
    input: { ms: 120_000 },
    timeoutMs: 200,
  });
  assert.equal(result.status, "failed");
  assert.equal(result.error?.code, "POOL_TIMEOUT");
  assert.match(result.error?.message ?? "", /timed out after 200 ms/);
  assert.equal(pool.metrics().workersReplaced, 1);
  const next = await pool.submit<{ worker: string }>({ module: JOBS, fn: "square", input: 2 });
  assert.equal(next.value?.worker, "plugsconc-pool-2:1");
});

Deno.test("a timed-out job is retried when it has retries left", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1, killGraceMs: 50 });
  const result = await pool.submit({
    module: JOBS,
    fn: "spin",
    input: { ms: 120_000 },
    timeoutMs: 100,
    maxRetries: 1,
    retryDelayMs: 1,
  });
  assert.equal(result.error?.code, "POOL_TIMEOUT");
  assert.equal(result.attempts, 2);
  assert.equal(pool.metrics().workersReplaced, 2);
});

Deno.test("cancelling a running job passes the abort reason to the job", async () => {
  await using dir = await tempDir();
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const file = join(dir.path, "report.txt");
  const controller = new AbortController();
  const pending = pool.submit({
    module: JOBS,
    fn: "reportAbort",
    input: { file },
    signal: controller.signal,
  });
  await waitFor("the job to start", () => fileSays(file, "started"));
  const cause = new RangeError("the user went away");
  controller.abort(cause);
  const result = await pending;
  assert.equal(result.status, "cancelled");
  assert.equal(result.reason, cause);
  assert.equal(result.error?.message, "the user went away");
  await waitFor(
    "the job to see the reason",
    () => fileSays(file, "RangeError: the user went away"),
  );
  await pool.stop();
  assert.equal(pool.metrics().workersReplaced, 0, "a job that stops by itself is not killed");
  assert.equal(pool.metrics().cancelled, 1);
});

Deno.test("a running job that ignores its cancellation is killed after the grace period", async () => {
  await using dir = await tempDir();
  await using pool = new WorkerPool({ maxWorkers: 1, killGraceMs: 100 });
  const file = join(dir.path, "spin.txt");
  const controller = new AbortController();
  const pending = pool.submit({
    module: JOBS,
    fn: "startThenSpin",
    input: { file, ms: 120_000 },
    signal: controller.signal,
  });
  await waitFor("the job to start", () => fileSays(file, "started"));
  controller.abort();
  const result = await pending;
  assert.equal(result.status, "cancelled");
  assert.equal(result.error?.name, "AbortError");
  await waitFor("the worker to be replaced", () => pool.metrics().workersReplaced === 1);
  assert.equal(await pool.run({ module: JOBS, fn: "echo", input: 1 }), 1);
});

Deno.test("cancelling a queued job drops it without running it", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const first = pool.submit({ module: JOBS, fn: "sleep", input: { ms: 300 } });
  const controller = new AbortController();
  const second = pool.submit({
    module: JOBS,
    fn: "flaky",
    input: { succeedOn: 1 },
    signal: controller.signal,
  });
  controller.abort(new Error("not needed"));
  const r2 = await second;
  assert.equal(r2.status, "cancelled");
  assert.equal(r2.attempts, 0);
  assert.equal((await first).status, "succeeded");
  // A job submitted with an aborted signal is cancelled at once.
  const r3 = await pool.submit({ module: JOBS, fn: "echo", signal: AbortSignal.abort("early") });
  assert.equal(r3.status, "cancelled");
  assert.equal(r3.reason, "early");
  assertAddsUp(pool);
});

Deno.test("a job that crashes its worker fails with the crash's message and stack", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const crashed = await pool.submit({ module: JOBS, fn: "crashInTimer" });
  assert.equal(crashed.status, "failed");
  assert.equal(crashed.error?.code, "POOL_WORKER_CRASHED");
  assert.match(crashed.error?.message ?? "", /uncaught in a timer/);
  assert.match(crashed.error?.stack ?? "", /_test_jobs\.ts/);
  const closed = await pool.submit({ module: JOBS, fn: "closeSelf" });
  assert.equal(closed.error?.code, "POOL_WORKER_CRASHED");
  assert.match(closed.error?.message ?? "", /close\(\)/);
  assert.equal(pool.metrics().workersReplaced, 2);
  assert.equal(await pool.run({ module: JOBS, fn: "echo", input: "alive" }), "alive");
});

Deno.test("jobs sent behind a crashing job to the same worker run again on its replacement", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  // Teach the pool that both functions are fast, so the jobs below go to the worker in one batch.
  for (let i = 0; i < 20; i++) {
    await Promise.all([
      pool.run({ module: JOBS, fn: "maybeCrash", input: {} }),
      pool.run({ module: JOBS, fn: "square", input: 1 }),
    ]);
  }
  const pending = Promise.all([
    pool.submit({ module: JOBS, fn: "maybeCrash", input: { crashAfterMs: 300 } }),
    ...Array.from({ length: 20 }, (_, i) => pool.submit({ module: JOBS, fn: "square", input: i })),
  ]);
  await null; // the dispatch runs as a microtask queued by the first submit
  assert.equal(pool.metrics().running, 21, "all 21 jobs went to the one worker");
  const [crashed, ...rest] = await pending;
  assert.equal(crashed!.error?.code, "POOL_WORKER_CRASHED");
  const squares = rest as JobResult<{ value: number; worker: string }>[];
  assert.deepEqual(squares.map((r) => r.value?.value), Array.from({ length: 20 }, (_, i) => i * i));
  assert.ok(squares.every((r) => r.attempts === 1), "re-sending does not count an attempt");
  assert.ok(squares.every((r) => r.value?.worker === "plugsconc-pool-2:1"));
  assert.equal(pool.metrics().workersReplaced, 1);
});

Deno.test("stop() refuses new jobs and finishes queued and running ones", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const running = pool.submit({ module: JOBS, fn: "sleep", input: { ms: 200, value: "r" } });
  const queued = [1, 2, 3].map((i) =>
    pool.submit({ module: JOBS, fn: "sleep", input: { ms: 1, value: i } })
  );
  await waitFor("the first job to be sent", () => pool.metrics().running === 1);
  const stopped = pool.stop();
  assert.equal(pool.state, "stopping");
  const refused = await pool.submit({ module: JOBS, fn: "echo" }).catch((e) => e);
  assert.ok(refused instanceof PoolError && refused.code === "POOL_STOPPED");
  await stopped;
  assert.equal(pool.state, "stopped");
  assert.equal((await running).value, "r");
  assert.deepEqual((await Promise.all(queued)).map((r) => r.value), [1, 2, 3]);
  const m = pool.metrics();
  assert.equal(m.succeeded, 4);
  assert.equal(m.rejected, 1);
  assert.equal(m.workers, 0);
  assert.ok(m.stoppedAt !== undefined && m.stoppedAt >= m.startedAt);
  assertAddsUp(pool);
});

Deno.test("shutdown() finishes running jobs and drops queued ones with the reason", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const running = pool.submit({ module: JOBS, fn: "sleep", input: { ms: 1000, value: "r" } });
  const queued = [1, 2].map((i) => pool.submit({ module: JOBS, fn: "echo", input: i }));
  const viaRun = pool.run({ module: JOBS, fn: "echo", input: 3 }).catch((e) => e);
  await waitFor("the first job to be sent", () => pool.metrics().running === 1);
  await pool.shutdown("maintenance");
  const thrown = await viaRun;
  assert.ok(thrown instanceof PoolError && thrown.code === "POOL_SHUTDOWN", String(thrown));
  assert.equal(thrown.cause, "maintenance");
  assert.equal((await running).value, "r");
  for (const r of await Promise.all(queued)) {
    assert.equal(r.status, "cancelled");
    assert.equal(r.attempts, 0);
    assert.equal(r.reason, "maintenance");
    assert.equal(r.error?.code, "POOL_SHUTDOWN");
  }
  const m = pool.metrics();
  assert.deepEqual([m.succeeded, m.cancelled, m.state], [1, 3, "stopped"]);
  assertAddsUp(pool);
});

Deno.test("terminate() cancels running and queued jobs at once", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const running = pool.submit({ module: JOBS, fn: "spin", input: { ms: 120_000 } });
  const queued = pool.submit({ module: JOBS, fn: "echo", input: 1 });
  await waitFor("the first job to be sent", () => pool.metrics().running === 1);
  await pool.terminate();
  for (const r of [await running, await queued]) {
    assert.equal(r.status, "cancelled");
    assert.equal(r.error?.code, "POOL_TERMINATED");
  }
  assert.equal(pool.state, "stopped");
  assert.equal(pool.metrics().workers, 0);
  assertAddsUp(pool);
  await pool.terminate(); // harmless twice
  await pool.stop();
});

Deno.test("stop({ timeoutMs }) terminates the jobs still running after the timeout", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const stuck = pool.submit({ module: JOBS, fn: "spin", input: { ms: 120_000 } });
  await waitFor("the job to be sent", () => pool.metrics().running === 1);
  await pool.stop({ timeoutMs: 100 });
  const r = await stuck;
  assert.equal(r.status, "cancelled");
  assert.equal(r.error?.code, "POOL_TERMINATED");
  assert.match(r.error?.message ?? "", /did not stop within 100 ms/);
  assert.equal(pool.state, "stopped");
});

Deno.test("disposing the pool terminates it", async () => {
  let pending: Promise<JobResult>;
  let pool: WorkerPool;
  {
    await using p = new WorkerPool({ maxWorkers: 1 });
    pool = p;
    pending = p.submit({ module: JOBS, fn: "sleep", input: { ms: 120_000 } });
    await waitFor("the job to be sent", () => p.metrics().running === 1);
  }
  const r = await pending;
  assert.equal(r.status, "cancelled");
  assert.equal(r.error?.code, "POOL_TERMINATED");
  assert.equal(pool.state, "stopped");
});

Deno.test("submit() rejects with POOL_QUEUE_FULL when the queue is at its limit", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1, queueLimit: 2 });
  const a = pool.submit({ module: JOBS, fn: "echo", input: "a" });
  const b = pool.submit({ module: JOBS, fn: "echo", input: "b" });
  const c = await pool.submit({ module: JOBS, fn: "echo", input: "c" }).catch((e) => e);
  assert.ok(c instanceof PoolError, String(c));
  assert.equal(c.code, "POOL_QUEUE_FULL");
  assert.match(c.message, /queue is full .*limit 2/);
  assert.deepEqual([(await a).value, (await b).value], ["a", "b"]);
  assert.equal(pool.metrics().rejected, 1);
  assert.equal(pool.metrics().submitted, 2);
  // Room again once the queue drained.
  assert.equal(await pool.run({ module: JOBS, fn: "echo", input: "d" }), "d");
});

Deno.test("a deadline fails the job without retries, also before it starts", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1, killGraceMs: 100 });
  const late = await pool.submit({ module: JOBS, fn: "echo", deadline: Date.now() - 1 });
  assert.equal(late.status, "failed");
  assert.equal(late.error?.code, "POOL_DEADLINE");
  assert.equal(late.attempts, 0);
  const slow = await pool.submit({
    module: JOBS,
    fn: "sleep",
    input: { ms: 60_000 },
    deadline: new Date(Date.now() + 200),
    maxRetries: 5,
  });
  assert.equal(slow.error?.code, "POOL_DEADLINE");
  assert.equal(slow.attempts, 1);
  assert.equal(pool.metrics().retried, 0);
});

Deno.test("invalid jobs fail clearly and are not retried", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1, maxRetries: 3, retryDelayMs: 1 });
  const missing = await pool.submit({ module: JOBS, fn: "nope" });
  assert.equal(missing.error?.code, "POOL_JOB_INVALID");
  assert.match(missing.error?.message ?? "", /no exported function "nope"/);
  assert.equal(missing.attempts, 1);
  const notFn = await pool.submit({ module: JOBS, fn: "notAFunction" });
  assert.match(notFn.error?.message ?? "", /it is a number/);
  const badModule = await pool.submit({ module: new URL("./does_not_exist.ts", JOBS) });
  assert.equal(badModule.error?.code, "POOL_JOB_INVALID");
  assert.match(badModule.error?.message ?? "", /cannot import job module/);
  const badResult = await pool.submit({ module: JOBS, fn: "uncloneable" });
  assert.equal(badResult.error?.code, "POOL_JOB_INVALID");
  assert.match(badResult.error?.message ?? "", /result cannot be structured-cloned/);
  const badInput = await pool.submit({ module: JOBS, fn: "echo", input: { f: () => 1 } });
  assert.equal(badInput.error?.code, "POOL_JOB_INVALID");
  assert.match(badInput.error?.message ?? "", /input cannot be structured-cloned/);
  await assert.rejects(pool.submit({ module: "./relative.ts" }), TypeError);
  await assert.rejects(
    pool.submit({ module: JOBS, fn: "echo", timeoutMs: -1 }),
    RangeError,
  );
  assert.equal(pool.metrics().retried, 0);
  assertAddsUp(pool);
});

Deno.test("transferables move the input to the worker and the result back", async () => {
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const buffer = new Uint8Array([1, 2, 3, 250]).buffer;
  const out = await pool.run<ArrayBuffer>({
    module: JOBS,
    fn: "sumBytes",
    input: { buffer },
    transfer: [buffer],
  });
  assert.equal(buffer.byteLength, 0, "the input buffer was transferred, not copied");
  assert.deepEqual([...new Uint32Array(out)], [256]);
});

/** Sends the pool's records at `lowestLevel` and above to the returned array until `reset()`. */
async function capturePoolLogs(lowestLevel: "debug" | "info"): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { test: (r) => records.push(r) },
    loggers: [
      { category: ["plugsconc", "pool"], sinks: ["test"], lowestLevel },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
  return records;
}

Deno.test("metrics add up over a mix of outcomes and are logged at info on stop", async () => {
  const records = await capturePoolLogs("info");
  try {
    const pool = new WorkerPool({ maxWorkers: 2, retryDelayMs: 1 });
    const controller = new AbortController();
    const all = Promise.all([
      ...Array.from({ length: 20 }, (_, i) => pool.submit({ module: JOBS, fn: "echo", input: i })),
      pool.submit({ module: JOBS, fn: "fail", input: { message: "x" } }),
      pool.submit({ module: JOBS, fn: "flaky", input: { succeedOn: 2 }, maxRetries: 1 }),
      pool.submit({ module: JOBS, fn: "sleep", input: { ms: 60_000 }, signal: controller.signal }),
    ]);
    controller.abort();
    await all;
    await pool.stop();
    const m = pool.metrics();
    assert.deepEqual(
      [m.submitted, m.succeeded, m.failed, m.cancelled, m.retried, m.pending, m.queueDepth],
      [23, 21, 1, 1, 1, 0, 0],
    );
    // 20 echoes, 1 failure, 2 attempts of the flaky job; the cancelled one never started.
    assert.equal(m.attempts, 23);
    assertAddsUp(pool);
    assert.ok(m.runMs.totalMs >= 0 && m.waitMs.maxMs >= m.waitMs.meanMs);
    const stopped = records.find((r) => String(r.rawMessage).startsWith("worker pool stopped"));
    assert.ok(stopped, "a stop record is logged");
    assert.equal(stopped.level, "info");
    assert.equal(stopped.properties.succeeded, 21);
    assert.equal(stopped.properties.mode, "stop");
  } finally {
    await reset();
  }
});

Deno.test("retry delays grow by retryMultiplier from retryDelayMs, capped at maxRetryDelayMs", async () => {
  const records = await capturePoolLogs("debug");
  try {
    await using pool = new WorkerPool({
      maxWorkers: 1,
      maxRetries: 4,
      retryDelayMs: 2,
      retryMultiplier: 3,
      maxRetryDelayMs: 40,
    });
    const result = await pool.submit({ module: JOBS, fn: "flaky", input: { succeedOn: 99 } });
    assert.equal(result.attempts, 5);
    // A job's own multiplier replaces the pool's.
    await pool.submit({
      module: JOBS,
      fn: "flaky",
      input: { succeedOn: 99 },
      maxRetries: 2,
      retryMultiplier: 1,
    });
  } finally {
    await reset();
  }
  const delays = records.filter((r) => r.properties.delay !== undefined)
    .map((r) => r.properties.delay);
  assert.deepEqual(delays, [2, 6, 18, 40, 2, 2]);
});
