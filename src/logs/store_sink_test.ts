import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { configure, getLogger, type LogRecord, reset } from "@logtape/logtape";
import { LogStore, type LogStoreOptions } from "./log_store.ts";
import { LogStoreError } from "./log_store_error.ts";
import { getLogStoreSink, type LogStoreSink } from "./store_sink.ts";
import type { LogStoreSinkOptions } from "./store_sink_options.ts";

interface Fixture extends AsyncDisposable {
  readonly path: string;
  readonly store: LogStore;
  readonly sink: LogStoreSink;
}

/** A store in a temp folder, a sink on it, and LogTape routing `plugsconc.*` to the sink. */
async function fixture(
  sinkOptions: LogStoreSinkOptions = {},
  storeOptions: LogStoreOptions = {},
): Promise<Fixture> {
  const dir = await Deno.makeTempDir({ prefix: "plugsconc-sink-" });
  const path = join(dir, "logs.db");
  const store = await LogStore.open(path, storeOptions);
  const sink = getLogStoreSink(store, sinkOptions);
  await configure({
    reset: true,
    sinks: { store: sink },
    loggers: [
      { category: ["plugsconc"], sinks: ["store"], lowestLevel: "trace" },
      { category: ["logtape", "meta"], lowestLevel: "fatal" },
    ],
  });
  return {
    path,
    store,
    sink,
    async [Symbol.asyncDispose]() {
      await reset().catch(() => {}); // disposes the sink too (a failed disposal is tested)
      await sink[Symbol.asyncDispose]().catch(() => {});
      store.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** `sink.flush()`, failing the test instead of hanging it when nothing is written. */
async function flushWithin(sink: LogStoreSink, ms = 10_000): Promise<void> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(new Error(`not flushed within ${ms} ms`)), ms);
  try {
    await sink.flush(stop.signal);
  } finally {
    clearTimeout(timer);
  }
}

function waitFor(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  return new Promise((resolve) => {
    const tick = () => {
      if (predicate()) return resolve(true);
      if (Date.now() > end) return resolve(false);
      setTimeout(tick, 10);
    };
    tick();
  });
}

function fakeRecord(i: number): LogRecord {
  return {
    category: ["plugsconc", "plugin", "cat"],
    level: "info",
    message: ["", `line ${i}`, ""],
    rawMessage: "{message}",
    timestamp: Date.now(),
    properties: { plugin: "cat", message: `line ${i}`, stream: "stderr" },
  };
}

Deno.test("records logged through LogTape land in the store with their fields", async () => {
  await using f = await fixture({ flushIntervalMs: 20 });
  const host = getLogger(["plugsconc", "host"]);
  host.info("plugin {plugin} ready (pid {pid})", { plugin: "cat", pid: 42 });
  host.warn("slow call {method}", { method: "speak", ms: 1500.5 });
  getLogger(["plugsconc", "plugin", "cat"]).error("{message}", {
    plugin: "cat",
    message: "boom \x1b[31m",
    code: 7,
  });
  await flushWithin(f.sink);
  const rows = f.store.query();
  assert.deepEqual(
    rows.map((e) => [e.level, e.category, e.plugin, e.message, e.properties]),
    [
      ["info", "plugsconc.host", "cat", "plugin cat ready (pid 42)", { pid: 42 }],
      ["warning", "plugsconc.host", null, "slow call speak", { method: "speak", ms: 1500.5 }],
      ["error", "plugsconc.plugin.cat", "cat", "boom \\u001b[31m", { code: 7 }],
    ],
  );
  assert.equal(f.sink.stats.written, 3);
  assert.equal(f.sink.stats.lastSeq, 3);
});

Deno.test("a full queue drops and counts records instead of blocking, and the count is logged", async () => {
  await using f = await fixture({ queueSize: 100, batchSize: 50, flushIntervalMs: 5_000 });
  const log = getLogger(["plugsconc", "flood"]);
  const t0 = performance.now();
  for (let i = 0; i < 10_000; i++) log.info("record {i}", { i });
  const elapsed = performance.now() - t0;
  // Nothing waited for the disk: 10,000 calls with the writer idle and the queue full.
  assert.ok(elapsed < 2_000, `logging took ${elapsed} ms`);
  assert.equal(f.sink.stats.accepted, 100);
  assert.equal(f.sink.stats.dropped, 9_900);
  assert.equal(f.sink.stats.queued, 100, "the queue never grows past queue_size");
  await flushWithin(f.sink);
  // Once the queue drained, the drop count was logged (into the store itself as well).
  assert.ok(await waitFor(() => f.sink.stats.accepted === 101, 3_000), "no drop report");
  await flushWithin(f.sink);
  assert.equal(f.store.query({ grep: "dropped 9900 records" }).length, 1);
  const [report] = f.store.query({ grep: "dropped 9900 records" });
  assert.equal(report!.level, "warning");
  assert.equal(report!.category, "plugsconc.logs.store");
  assert.equal(report!.properties.dropped, 9_900);
  assert.equal(f.store.stats().dropped, 9_900, "the drop count is persisted for `logs stats`");
  assert.deepEqual(f.store.query({ limit: 3, afterSeq: 0 }).map((e) => e.message), [
    "record 0",
    "record 1",
    "record 2",
  ]);
});

Deno.test("disposing the sink writes every queued record before it closes", async () => {
  await using f = await fixture({ queueSize: 50_000, batchSize: 1_000, flushIntervalMs: 60_000 });
  for (let i = 0; i < 30_000; i++) f.sink(fakeRecord(i));
  assert.equal(f.sink.stats.written, 0);
  await f.sink[Symbol.asyncDispose]();
  await f.sink[Symbol.asyncDispose](); // twice is harmless
  assert.equal(f.sink.stats.written, 30_000);
  const s = f.store.stats();
  assert.equal(s.rows, 30_000);
  assert.equal(s.lastSeq, 30_000);
  f.sink(fakeRecord(-1)); // ignored after disposal
  assert.equal(f.sink.stats.accepted, 30_000);
});

Deno.test("a locked database does not block callers; the sink degrades, retries and catches up", async () => {
  await using f = await fixture({ flushIntervalMs: 10, busyTimeoutMs: 20, maxRetryDelayMs: 100 });
  const other = new DatabaseSync(f.path);
  try {
    other.exec("BEGIN IMMEDIATE");
    for (let i = 0; i < 500; i++) f.sink(fakeRecord(i));
    assert.ok(await waitFor(() => f.sink.stats.degraded !== null, 3_000), "never degraded");
    assert.equal(f.sink.stats.degraded!.code, "LOG_STORE_LOCKED");
    // The event loop stays free while the writer waits on the lock.
    const lags: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await new Promise((r) => setTimeout(r, 5));
      lags.push(performance.now() - t - 5);
    }
    assert.ok(Math.max(...lags) < 500, `event loop stalled: ${lags}`);
    assert.equal(f.sink.stats.written, 0);
    await assert.rejects(flushWithin(f.sink, 100), /not flushed within 100 ms/);
  } finally {
    other.exec("COMMIT");
    other.close();
  }
  await flushWithin(f.sink);
  assert.equal(f.sink.stats.degraded, null);
  assert.ok(await waitFor(() => f.store.query({ grep: "writes again" }).length === 1, 3_000));
  assert.equal(f.store.query({ plugin: "cat", limit: 1000 }).length, 500);
  const [warning] = f.store.query({ grep: "cannot write" });
  assert.equal(warning?.properties.code, "LOG_STORE_LOCKED");
});

Deno.test("a full disk: records are held or dropped with a count, and writing resumes when space frees", async () => {
  // A tiny database (8 KiB pages): full after ~200 of these records; the queue and the batches
  // in flight (at most 100 records) fit in what the deletion below frees.
  const pages = 40;
  await using f = await fixture(
    { queueSize: 50, batchSize: 25, flushIntervalMs: 10, maxRetryDelayMs: 50 },
    { maxPageCount: pages },
  );
  const big = (i: number) => {
    const r = fakeRecord(i);
    return { ...r, message: ["", `${i} ${"x".repeat(1000)}`, ""] };
  };
  let i = 0;
  while (f.sink.stats.degraded === null && i < 20_000) {
    for (let k = 0; k < 50; k++) f.sink(big(i++));
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(f.sink.stats.degraded?.code, "LOG_STORE_FULL");
  // While the disk is full the queue fills; what does not fit is dropped and counted.
  for (let k = 0; k < 1_000; k++) f.sink(big(i++));
  assert.ok(f.sink.stats.dropped > 0);
  assert.ok(f.sink.stats.queued <= 50);
  const written = f.sink.stats.written;
  // Free space: another connection deletes what was written.
  const other = new DatabaseSync(f.path);
  other.exec("DELETE FROM logs");
  other.close();
  const accepted = f.sink.stats.accepted;
  await flushWithin(f.sink);
  assert.equal(f.sink.stats.degraded, null);
  assert.equal(f.sink.stats.lost, 0);
  assert.ok(f.sink.stats.written >= accepted, "every accepted record was written");
  assert.ok(f.sink.stats.written > written);
});

Deno.test("retention runs in the writer in the background", async () => {
  await using f = await fixture({ maxRows: 100, retentionIntervalMs: 50, flushIntervalMs: 10 });
  for (let i = 0; i < 1_000; i++) f.sink(fakeRecord(i));
  await flushWithin(f.sink);
  assert.ok(
    await waitFor(() => f.store.stats().rows <= 100, 3_000),
    `${f.store.stats().rows} rows`,
  );
  assert.equal(f.store.query({ limit: 1 })[0]!.message, "line 999");
});

Deno.test("disposal gives up after disposeTimeoutMs and says how many records were not written", async () => {
  await using f = await fixture({ disposeTimeoutMs: 300, busyTimeoutMs: 20, maxRetryDelayMs: 50 });
  const other = new DatabaseSync(f.path);
  try {
    other.exec("BEGIN IMMEDIATE");
    for (let i = 0; i < 10; i++) f.sink(fakeRecord(i));
    assert.ok(await waitFor(() => f.sink.stats.degraded !== null, 3_000));
    await assert.rejects(f.sink[Symbol.asyncDispose](), (e: unknown) => {
      assert.ok(e instanceof LogStoreError);
      assert.equal(e.code, "LOG_STORE_FLUSH_TIMEOUT");
      // The ten records, plus the sink's own warning that it cannot write.
      assert.equal(e.details.unwritten, 11);
      assert.match(e.message, /11 log records were not written .* locked by another connection/);
      return true;
    });
  } finally {
    other.exec("ROLLBACK");
    other.close();
  }
});

Deno.test("a record that cannot be rendered is counted as lost; the others are written", async () => {
  await using f = await fixture({ flushIntervalMs: 10 });
  const bad = Object.defineProperty(fakeRecord(1), "message", {
    get(): never {
      throw new Error("a template that throws");
    },
  });
  f.sink(fakeRecord(0));
  f.sink(bad);
  f.sink(fakeRecord(2));
  await flushWithin(f.sink);
  assert.equal(f.sink.stats.lost, 1);
  assert.deepEqual(f.store.query().map((e) => e.message), ["line 0", "line 2"]);
});

Deno.test("a database the writer refuses for good yields one error record, not a storm of them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "plugsconc-sink-" });
  const path = join(dir, "logs.db");
  using store = LogStore.openSync(path);
  const sink = getLogStoreSink(store, { flushIntervalMs: 20, dropReportIntervalMs: 60_000 });
  await using _cleanup = {
    async [Symbol.asyncDispose]() {
      await reset().catch(() => {});
      await sink[Symbol.asyncDispose]().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
  // Another plugsconc version took the database over: every batch is refused from now on.
  const other = new DatabaseSync(path);
  other.exec("INSERT INTO schema_version VALUES (2, 0)");
  other.close();
  const errors: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { store: sink, seen: (r) => void (r.level === "error" && errors.push(r)) },
    loggers: [
      { category: ["plugsconc"], sinks: ["store", "seen"], lowestLevel: "info" },
      { category: ["logtape", "meta"], lowestLevel: "fatal" },
    ],
  });
  getLogger(["plugsconc", "test"]).info("one record");
  assert.ok(await waitFor(() => sink.stats.lost >= 2, 5_000), JSON.stringify(sink.stats));
  await new Promise((r) => setTimeout(r, 500));
  // The record was refused, then the error about it; the error about the error waits.
  assert.equal(errors.length, 1, errors.map((e) => e.message.join("")).join("\n"));
  assert.match(String(errors[0]!.properties.code), /LOG_STORE_SCHEMA/);
});

Deno.test("the queue's memory bound counts large string fields, not only the message", async () => {
  await using f = await fixture({ flushIntervalMs: 60_000, maxQueueBytes: 1024 * 1024 });
  const big = "x".repeat(300 * 1024);
  for (let i = 0; i < 10; i++) {
    f.sink({ ...fakeRecord(i), properties: { ...fakeRecord(i).properties, blob: big } });
  }
  assert.equal(f.sink.stats.accepted, 4, "1 MiB holds four 300 KiB records");
  assert.equal(f.sink.stats.dropped, 6);
});

Deno.test("the queue's memory bound counts nested values, whatever their shape", async () => {
  await using f = await fixture({ flushIntervalMs: 60_000, maxQueueBytes: 1024 * 1024 });
  const big = "x".repeat(300 * 1024);
  const shapes = [
    { fields: { blob: { data: big } } },
    { list: [[big]] },
    { deep: { a: { b: { c: big } } } },
  ];
  for (let i = 0; i < 12; i++) {
    f.sink({ ...fakeRecord(i), properties: { ...fakeRecord(i).properties, ...shapes[i % 3] } });
  }
  assert.equal(f.sink.stats.accepted, 4, "1 MiB holds four 300 KiB records");
  assert.equal(f.sink.stats.dropped, 8);
});

Deno.test("the writer keeps the database and its WAL under maxBytes, deleting the oldest records, and says so", async () => {
  const cap = 8 * 1024 * 1024;
  const interval = 300;
  await using f = await fixture({
    flushIntervalMs: 10,
    maxBytes: cap,
    dropReportIntervalMs: interval,
  });
  const started = Date.now();
  const log = getLogger(["plugsconc", "plugin", "flood"]);
  const text = "t".repeat(4_000);
  let peak = 0;
  const size = () => {
    const s = (p: string) => {
      try {
        return Deno.statSync(p).size;
      } catch {
        return 0;
      }
    };
    return s(f.path) + s(`${f.path}-wal`);
  };
  // About 48 MiB, six times the cap, as fast as the queue takes it.
  for (let i = 1; i <= 12_000; i++) {
    log.info("record {i}", { i, text });
    if (i % 500 === 0) {
      await flushWithin(f.sink);
      peak = Math.max(peak, size());
    }
  }
  await flushWithin(f.sink);
  peak = Math.max(peak, size());
  const stats = f.sink.stats;
  assert.equal(stats.dropped, 0);
  assert.ok(stats.capped > 5_000, JSON.stringify(stats));
  assert.ok(stats.pruned >= stats.capped);
  assert.ok(peak < cap, `the store reached ${peak} bytes`);
  const rows = f.store.stats();
  assert.ok(rows.sizeBytes < cap, JSON.stringify(rows));
  // The newest records are kept, the oldest are gone.
  assert.equal(f.store.query({ grep: "record 12000", limit: 1 }).length, 1);
  assert.equal(f.store.query({ grep: "record 1 ", limit: 1 }).length, 0);
  // The deletion is reported at most once per interval, with the count (the older reports
  // may be deleted in turn: they are old records too).
  await new Promise((r) => setTimeout(r, interval));
  await f.sink[Symbol.asyncDispose]();
  const reports = f.store.query({ grep: "reached logging.store.max_bytes", limit: 1000 });
  assert.ok(reports.length >= 1, "no report of the deletions");
  assert.ok(reports.length <= (Date.now() - started) / interval + 1, `${reports.length} reports`);
  assert.equal(reports.at(-1)!.level, "warning");
  assert.match(
    reports.at(-1)!.message,
    /^log store reached logging\.store\.max_bytes \(8388608 bytes\): deleted the \d+ oldest records \(\d+ in all\)$/,
  );
});

Deno.test("getLogStoreSink() checks its options", async () => {
  const dir = await Deno.makeTempDir();
  try {
    using store = LogStore.openSync(join(dir, "logs.db"));
    assert.throws(
      () => getLogStoreSink(store, { queueSize: 0 }),
      /queueSize must be a positive integer, got 0/,
    );
    assert.throws(() => getLogStoreSink(store, { batchSize: 1.5 }), RangeError);
    assert.throws(() => getLogStoreSink(store, { retentionDays: -1 }), RangeError);
    assert.throws(() => getLogStoreSink(store, { maxBytes: -1 }), RangeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
