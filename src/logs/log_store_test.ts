import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { LogStore, type NewLogEntry } from "./log_store.ts";
import { LogStoreError } from "./log_store_error.ts";
import { SCHEMA_VERSION } from "./migrations.ts";

async function tempDir(): Promise<{ dir: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "plugsconc-logstore-" });
  return {
    dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);

function entry(partial: Partial<NewLogEntry> & { message: string }): NewLogEntry {
  return { ts: T0, level: "info", category: "plugsconc.host", ...partial };
}

Deno.test("LogStore.open() creates a WAL database with a schema version and indexes", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.dir, "nested", "logs.db");
  {
    await using store = await LogStore.open(path);
    assert.equal(store.stats().schemaVersion, SCHEMA_VERSION);
  }
  const db = new DatabaseSync(path);
  try {
    assert.equal(
      (db.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode,
      "wal",
    );
    const indexes = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index'").all() as {
      name: string;
    }[]).map((r) => r.name);
    for (const name of ["logs_ts", "logs_warn_ts", "logs_plugin_ts"]) {
      assert.ok(indexes.includes(name), name);
    }
    const versions = db.prepare("SELECT version FROM schema_version").all() as {
      version: number;
    }[];
    assert.deepEqual(versions.map((v) => v.version), [1]);
  } finally {
    db.close();
  }
  // Opening again applies nothing twice.
  await using again = await LogStore.open(path);
  assert.equal(again.stats().schemaVersion, SCHEMA_VERSION);
});

Deno.test("LogStore.open() refuses a database from a newer plugsconc", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.dir, "logs.db");
  (await LogStore.open(path)).close();
  const db = new DatabaseSync(path);
  db.exec(`INSERT INTO schema_version VALUES (${SCHEMA_VERSION + 1}, 0)`);
  db.close();
  await assert.rejects(LogStore.open(path), (e: unknown) => {
    assert.ok(e instanceof LogStoreError);
    assert.equal(e.code, "LOG_STORE_SCHEMA");
    assert.match(e.message, /newer than this plugsconc/);
    return true;
  });
});

Deno.test("LogStore.open() says clearly when the path is unwritable, missing or not a database", async () => {
  await using tmp = await tempDir();
  const file = join(tmp.dir, "a-file");
  await Deno.writeTextFile(file, "not a folder");
  await assert.rejects(LogStore.open(join(file, "logs.db")), (e: unknown) => {
    assert.ok(e instanceof LogStoreError);
    assert.equal(e.code, "LOG_STORE_UNWRITABLE");
    assert.equal(e.details.path, join(file, "logs.db"));
    assert.match(e.message, /logging\.store\.db_file/);
    assert.ok(e.retryable);
    return true;
  });
  await assert.rejects(LogStore.open(join(tmp.dir, "none.db"), { create: false }), {
    code: "LOG_STORE_MISSING",
  });
  const junk = join(tmp.dir, "junk.db");
  await Deno.writeTextFile(junk, "x".repeat(4096));
  await assert.rejects(LogStore.open(junk), (e: unknown) => {
    assert.ok(e instanceof LogStoreError);
    assert.equal(e.code, "LOG_STORE_CORRUPT");
    assert.ok(!e.retryable);
    return true;
  });
});

Deno.test("a read-only open never changes the file: a foreign SQLite file is refused as it is", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.dir, "other.db");
  const db = new DatabaseSync(path);
  db.exec("CREATE TABLE accounts (id INTEGER)");
  db.close();
  const before = await Deno.readFile(path);
  assert.throws(() => LogStore.openSync(path, { readOnly: true }), (e: unknown) => {
    assert.ok(e instanceof LogStoreError);
    assert.equal(e.code, "LOG_STORE_CORRUPT");
    assert.match(e.message, /is not a plugsconc log database/);
    return true;
  });
  assert.deepEqual(await Deno.readFile(path), before);
  await assert.rejects(
    LogStore.open(join(tmp.dir, "none.db"), { readOnly: true }),
    (e: unknown) => (e as LogStoreError).code === "LOG_STORE_MISSING",
  );
  // A real store opens read-only, reads, and refuses writes.
  const real = join(tmp.dir, "logs.db");
  LogStore.openSync(real).append([entry({ message: "kept" })]);
  using reader = LogStore.openSync(real, { readOnly: true });
  assert.deepEqual(reader.query().map((e) => e.message), ["kept"]);
  assert.throws(() => reader.append([entry({ message: "no" })]));
});

Deno.test("append() stores every field and query() filters by each of them", async () => {
  await using tmp = await tempDir();
  await using store = await LogStore.open(join(tmp.dir, "logs.db"));
  const r = store.append([
    entry({ message: "host starting", properties: { version: "0.1.0" } }),
    entry({
      ts: T0 + 1000,
      category: ["plugsconc", "plugin", "cat"],
      plugin: "cat",
      message: "meow 100% _done_",
      properties: { stream: "stderr" },
    }),
    entry({
      ts: T0 + 2000,
      level: "warning",
      category: "plugsconc.plugin.dog",
      plugin: "dog",
      message: "woof",
    }),
    entry({
      ts: T0 + 3000,
      level: "error",
      category: "plugsconc.plugin.cat",
      plugin: "cat",
      message: "hiss",
      properties: { requestId: "r-42" },
    }),
    entry({ ts: T0 + 4000, level: "debug", category: "plugsconc.rpc", message: "frame" }),
  ]);
  assert.deepEqual(r, { count: 5, lastSeq: 5 });

  const all = store.query();
  assert.deepEqual(all.map((e) => e.seq), [1, 2, 3, 4, 5]);
  assert.deepEqual(all[1], {
    seq: 2,
    ts: T0 + 1000,
    level: "info",
    category: "plugsconc.plugin.cat",
    plugin: "cat",
    message: "meow 100% _done_",
    properties: { stream: "stderr" },
  });
  const msgs = (q: Parameters<LogStore["query"]>[0]) => store.query(q).map((e) => e.message);
  assert.deepEqual(msgs({ plugin: "cat" }), ["meow 100% _done_", "hiss"]);
  assert.deepEqual(msgs({ plugin: ["cat", "dog"] }), ["meow 100% _done_", "woof", "hiss"]);
  assert.deepEqual(msgs({ plugin: [] }), []);
  assert.deepEqual(msgs({ minLevel: "warning" }), ["woof", "hiss"]);
  assert.deepEqual(msgs({ minLevel: "warn" }), ["woof", "hiss"]);
  assert.deepEqual(msgs({ minLevel: "error" }), ["hiss"]);
  assert.deepEqual(msgs({ minLevel: "info" }), [
    "host starting",
    "meow 100% _done_",
    "woof",
    "hiss",
  ]);
  assert.deepEqual(msgs({ since: T0 + 2000 }), ["woof", "hiss", "frame"]);
  assert.deepEqual(msgs({ until: new Date(T0 + 2000) }), ["host starting", "meow 100% _done_"]);
  assert.deepEqual(msgs({ since: T0 + 1000, until: T0 + 3000 }), ["meow 100% _done_", "woof"]);
  assert.deepEqual(msgs({ category: "plugsconc.plugin" }), ["meow 100% _done_", "woof", "hiss"]);
  assert.deepEqual(
    msgs({ category: "plugsconc.plug" }),
    [],
    "a category prefix matches whole parts",
  );
  // grep: substring of the message or the fields, with LIKE wildcards taken literally.
  assert.deepEqual(msgs({ grep: "MEOW" }), ["meow 100% _done_"]);
  assert.deepEqual(msgs({ grep: "100%" }), ["meow 100% _done_"]);
  assert.deepEqual(msgs({ grep: "%" }), ["meow 100% _done_"]);
  assert.deepEqual(msgs({ grep: "_d" }), ["meow 100% _done_"]);
  assert.deepEqual(msgs({ grep: "r-42" }), ["hiss"]);
  assert.deepEqual(msgs({ grep: "o_e" }), []);
  // limit keeps the newest matches, oldest first; afterSeq pages forward.
  assert.deepEqual(msgs({ limit: 2 }), ["hiss", "frame"]);
  assert.deepEqual(store.query({ afterSeq: 2, limit: 2 }).map((e) => e.seq), [3, 4]);
  assert.deepEqual(msgs({ afterSeq: 2, plugin: "cat" }), ["hiss"]);
  assert.throws(() => store.query({ limit: 0 }), RangeError);
  assert.throws(() => store.query({ minLevel: "loud" as "info" }), RangeError);
});

Deno.test("append() stores text escaped, cut at 10 MiB, and never breaks on odd input", async () => {
  await using tmp = await tempDir();
  await using store = await LogStore.open(join(tmp.dir, "logs.db"));
  store.append([
    entry({ message: "\x1b[2Jclear\x00nul\ud800", category: "a\x1bb", plugin: "p\x07" }),
    entry({ message: "x".repeat(11 * 1024 * 1024) }),
    entry({ message: "{}", properties: "not json" }),
  ]);
  const [odd, big, bad] = store.query();
  assert.equal(odd!.message, "\\u001b[2Jclear\\u0000nul\ufffd");
  assert.equal(odd!.category, "a\\u001bb");
  assert.equal(odd!.plugin, "p\\u0007");
  assert.match(big!.message, / …\[truncated 1048576 bytes\]$/);
  assert.equal(big!.message.length, 10 * 1024 * 1024 + " …[truncated 1048576 bytes]".length);
  assert.deepEqual(bad!.properties, { unparsed: "not json" });
});

Deno.test("stats() reports rows, size, drops, oldest and newest, rows per level", async () => {
  await using tmp = await tempDir();
  await using store = await LogStore.open(join(tmp.dir, "logs.db"));
  const empty = store.stats();
  assert.equal(empty.rows, 0);
  assert.equal(empty.oldestTs, null);
  assert.equal(empty.lastSeq, null);
  store.appendRows([T0, 2, "c", null, "a", "{}", T0 + 5, 4, "c", null, "b", "{}"], 7);
  store.appendRows([], 3);
  const s = store.stats();
  assert.equal(s.rows, 2);
  assert.equal(s.dropped, 10);
  assert.equal(s.oldestTs, T0);
  assert.equal(s.newestTs, T0 + 5);
  assert.equal(s.firstSeq, 1);
  assert.equal(s.lastSeq, 2);
  assert.deepEqual(s.levels, { info: 1, error: 1 });
  assert.ok(s.sizeBytes >= 4096);
  assert.equal(store.lastSeq(), 2);
});

Deno.test("prune() enforces max_rows and retention_days in small batches, oldest first", async () => {
  await using tmp = await tempDir();
  await using store = await LogStore.open(join(tmp.dir, "logs.db"));
  const day = 86_400_000;
  const now = T0 + 100 * day;
  const entries: NewLogEntry[] = [];
  for (let i = 0; i < 1000; i++) {
    // 400 records 20 days old, 600 from today.
    entries.push(entry({ ts: i < 400 ? now - 20 * day : now - 1000, message: `m${i}` }));
  }
  store.append(entries);
  assert.equal(store.prune({ maxRows: 900 }, { now, batchSize: 60 }), 60, "one batch at a time");
  let total = 60;
  for (let n; (n = store.prune({ maxRows: 900 }, { now, batchSize: 60 })) > 0;) total += n;
  assert.equal(total, 100);
  assert.equal(store.stats().rows, 900);
  assert.equal(store.query({ limit: 1, afterSeq: 0 })[0]!.message, "m100");
  while (store.prune({ retentionDays: 14 }, { now, batchSize: 128 }) > 0) { /* batches */ }
  const s = store.stats();
  assert.equal(s.rows, 600);
  assert.equal(s.oldestTs, now - 1000);
  assert.equal(store.prune({ retentionDays: 0, maxRows: 0 }, { now }), 0, "0 means keep");
});

Deno.test("a locked database gives LOG_STORE_LOCKED and writes work again after the lock", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.dir, "logs.db");
  await using store = await LogStore.open(path, { busyTimeoutMs: 50 });
  const other = new DatabaseSync(path);
  try {
    other.exec("BEGIN IMMEDIATE");
    const t0 = performance.now();
    assert.throws(() => store.append([entry({ message: "blocked" })]), (e: unknown) => {
      assert.ok(e instanceof LogStoreError);
      assert.equal(e.code, "LOG_STORE_LOCKED");
      assert.ok(e.retryable);
      return true;
    });
    assert.ok(performance.now() - t0 < 2000);
    // Readers are not blocked by the writer's lock (WAL).
    assert.deepEqual(store.query(), []);
    other.exec("COMMIT");
    assert.equal(store.append([entry({ message: "after" })]).count, 1);
    assert.deepEqual(store.query().map((e) => e.message), ["after"]);
  } finally {
    other.close();
  }
});

Deno.test("a full database gives LOG_STORE_FULL, loses nothing written, and recovers when space frees", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.dir, "logs.db");
  (await LogStore.open(path)).close();
  const pages = (() => {
    const db = new DatabaseSync(path);
    const n = (db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
    db.close();
    return n;
  })();
  await using store = await LogStore.open(path, { maxPageCount: pages + 40 });
  const batch = Array.from(
    { length: 50 },
    (_, i) => entry({ message: `${i} ${"x".repeat(1000)}` }),
  );
  let written = 0;
  let full: unknown;
  for (let i = 0; i < 100 && full === undefined; i++) {
    try {
      written += store.append(batch).count;
    } catch (e) {
      full = e;
    }
  }
  assert.ok(full instanceof LogStoreError, `no error after ${written} rows`);
  assert.equal(full.code, "LOG_STORE_FULL");
  assert.match(full.message, /disk is full/);
  assert.equal(store.stats().rows, written, "the failed batch left nothing behind");
  // Space frees up (here: another connection deletes rows); the same connection writes again.
  const other = new DatabaseSync(path);
  other.exec("DELETE FROM logs");
  other.close();
  assert.equal(store.append(batch).count, 50);
});

Deno.test("a second connection reads what the first committed", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.dir, "logs.db");
  await using writer = await LogStore.open(path);
  await using reader = await LogStore.open(path, { create: false });
  writer.append([entry({ message: "one" })]);
  assert.deepEqual(reader.query().map((e) => e.message), ["one"]);
  writer.close();
  writer.close(); // idempotent
  assert.throws(() => writer.query(), { code: "LOG_STORE_CLOSED" });
});
