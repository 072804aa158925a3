/**
 * Integration tests of the persistent log store: host and plugin records through the sink into
 * SQLite, queried with every filter (library and `logs query`); a second process reading and
 * following while the host writes; a locked database not stalling plugin calls; a writer killed
 * with SIGKILL mid-batch leaving an intact database with every committed record.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { getLogger } from "@logtape/logtape";
import { type Config, loadConfig } from "../src/config/mod.ts";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { formatAge, formatBytes, parseTimeArg } from "../src/cli/logs.ts";
import {
  getLogStoreSink,
  LogStore,
  logStoreOptions,
  type LogStoreSink,
  logStoreSinkOptions,
  setupLogging,
} from "../src/logs/mod.ts";
import { FIXTURE_PLUGINS, makeHome, ROOT, type TestHome, waitFor } from "./_helpers.ts";

const BEHAVE = join(FIXTURE_PLUGINS, "behave");
const MAIN = join(ROOT, "main.ts");

/** The store, its sink and LogTape wired like `run` does; disposing flushes and closes them. */
async function storeLogging(
  config: Config,
  sinkOverrides: Parameters<typeof getLogStoreSink>[1] = {},
): Promise<{ store: LogStore; sink: LogStoreSink } & AsyncDisposable> {
  const cfg = config.logging.store;
  const store = await LogStore.open(cfg.db_file, logStoreOptions(cfg));
  const sink = getLogStoreSink(store, { ...logStoreSinkOptions(cfg), ...sinkOverrides });
  const logging = await setupLogging(config.logging, {
    extraSinks: { store: sink },
    write: () => {},
    isTerminal: false,
  });
  return {
    store,
    sink,
    async [Symbol.asyncDispose]() {
      await logging[Symbol.asyncDispose]();
      await sink[Symbol.asyncDispose]();
      store.close();
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

async function homeWithBehave(config: Record<string, unknown> = {}): Promise<TestHome> {
  const home = await makeHome({
    watcher: { enabled: false },
    logging: { level: "debug", store: { flush_interval_ms: 20 } },
    ...config,
  });
  await home.addPlugin(BEHAVE);
  return home;
}

async function cli(
  home: TestHome,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = memoryIo();
  const code = await runCli(["--config", home.configPath, ...args], io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

Deno.test("records from the host and from a real plugin are queryable with each filter", async () => {
  await using home = await homeWithBehave();
  const { config } = await loadConfig(home.configPath);
  const before = Date.now();
  let between = 0;
  {
    await using logs = await storeLogging(config);
    await using host = await home.startHost();
    getLogger(["plugsconc", "test"]).info("host side record {n}", { n: 1 });
    await host.call("behave", "stderr", {
      lines: [
        "a plain line",
        "\x1b[31mred\x1b[0m and a bell\x07",
        JSON.stringify({ level: "error", message: "structured failure", request: 17 }),
      ],
    });
    await new Promise((r) => setTimeout(r, 30));
    between = Date.now();
    await new Promise((r) => setTimeout(r, 30));
    await host.call("behave", "log", {
      level: "warning",
      message: "from the handler 100%",
      fields: { answer: 42 },
    });
    const has = (text: string) => logs.store.query({ grep: text }).length > 0;
    assert.ok(
      await waitFor(async () => {
        await flushWithin(logs.sink);
        return ["a plain line", "red", "structured failure", "from the handler", "via console"]
          .every(has);
      }, 5_000),
      JSON.stringify(logs.store.query({ plugin: "behave" })),
    );
  }
  await using store = await LogStore.open(config.logging.store.db_file, { create: false });
  const msgs = (q: Parameters<LogStore["query"]>[0]) => store.query(q).map((e) => e.message);

  const plugin = store.query({ plugin: "behave", category: "plugsconc.plugin.behave" });
  const plain = plugin.find((e) => e.message === "a plain line")!;
  assert.equal(plain.level, "info");
  assert.deepEqual(plain.properties, { stream: "stderr" });
  assert.ok(
    plugin.some((e) => e.message === "\\u001b[31mred\\u001b[0m and a bell\\u0007"),
    "control characters are stored escaped",
  );
  const structured = plugin.find((e) => e.message === "structured failure")!;
  assert.equal(structured.level, "error");
  assert.equal(structured.properties.request, 17);
  const handler = plugin.find((e) => e.message === "from the handler 100%")!;
  assert.equal(handler.level, "warning");
  assert.equal(handler.properties.answer, 42);

  assert.deepEqual(msgs({ plugin: "behave", minLevel: "warning" }), [
    "structured failure",
    "from the handler 100%",
  ]);
  assert.deepEqual(
    msgs({ plugin: "behave", since: between }).filter((m) => !m.startsWith("plugin ")),
    [
      "from the handler 100%",
      "via console { n: 1 }",
    ],
  );
  assert.ok(msgs({ plugin: "behave", until: between }).includes("a plain line"));
  assert.ok(!msgs({ plugin: "behave", until: between }).includes("from the handler 100%"));
  assert.deepEqual(msgs({ grep: "host side" }), ["host side record 1"]);
  assert.deepEqual(msgs({ grep: "100%" }), ["from the handler 100%"]);
  assert.equal(store.query({ plugin: "behave", limit: 2 }).length, 2);
  // Host records about the plugin (state changes) are found by --plugin too.
  assert.ok(msgs({ plugin: "behave", category: "plugsconc.host" }).some((m) => /ready/.test(m)));
  assert.deepEqual(msgs({ plugin: "nobody" }), []);
  assert.ok(store.query({ since: before }).length >= 8);

  // The same through `logs query` (in-process CLI).
  const q = await cli(home, [
    "logs",
    "query",
    "--json",
    "--plugin",
    "behave",
    "--level",
    "warning",
  ]);
  assert.equal(q.code, 0, q.stderr);
  const rows = jsonLines(q.stdout);
  assert.deepEqual(rows.map((r) => r.message), ["structured failure", "from the handler 100%"]);
  assert.equal(rows[1]!.level, "warning");
  assert.deepEqual(rows[1]!.properties, { answer: 42, method: "log" });
  assert.equal(typeof rows[1]!.seq, "number");
  assert.equal(rows[1]!.time, new Date(rows[1]!.ts as number).toISOString());
  const grep = await cli(home, ["logs", "query", "--json", "--grep", "HOST SIDE", "--since", "1h"]);
  assert.deepEqual(jsonLines(grep.stdout).map((r) => r.message), ["host side record 1"]);
  const none = await cli(home, ["logs", "query", "--json", "--until", "1h"]);
  assert.equal(none.code, 0, none.stderr);
  assert.equal(none.stdout, "");
  const limited = await cli(home, [
    "logs",
    "query",
    "--json",
    "--plugin",
    "behave",
    "--limit",
    "1",
  ]);
  assert.equal(jsonLines(limited.stdout).length, 1);
  const human = await cli(home, ["logs", "query", "--plugin", "behave", "--level", "error"]);
  assert.match(
    human.stdout,
    /^TIME +LEVEL +SOURCE +MESSAGE\n\S+Z +ERROR +behave +structured failure \{"request":17,"stream":"stderr"\}\n$/,
  );
  assert.ok(!human.stdout.includes("\x1b"), "no colors when not a terminal");
  const bad = await cli(home, ["logs", "query", "--level", "loud"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--level "loud" is not a level/);

  const stats = await cli(home, ["logs", "stats", "--json"]);
  assert.equal(stats.code, 0, stats.stderr);
  const s = JSON.parse(stats.stdout);
  assert.equal(s.rows, store.stats().rows);
  assert.equal(s.dropped, 0);
  assert.ok(s.sizeBytes > 0);
  assert.equal(typeof s.oldest, "string");
  const humanStats = await cli(home, ["logs", "stats"]);
  assert.match(humanStats.stdout, /^database: .*logs\.db\nrows: +\d+\n/);
});

Deno.test("`logs query` and `logs tail` in another process read while the host writes", async () => {
  await using home = await makeHome({
    logging: { level: "info", store: { flush_interval_ms: 10 } },
  });
  const { config } = await loadConfig(home.configPath);
  await using logs = await storeLogging(config);
  const log = getLogger(["plugsconc", "plugin", "writer"]);
  let n = 0;
  const writer = setInterval(() => {
    for (let i = 0; i < 20; i++) log.info("tick {n}", { plugin: "writer", n: n++ });
  }, 5);
  try {
    await flushWithin(logs.sink);
    const run = (args: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", MAIN, "--config", home.configPath, "logs", ...args],
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      });
    const tail = run(["tail", "--json", "--plugin", "writer", "-n", "3", "--interval", "30"])
      .spawn();
    const query = await run(["query", "--json", "--plugin", "writer", "--limit", "50"]).output();
    assert.equal(query.code, 0, new TextDecoder().decode(query.stderr));
    const queried = jsonLines(new TextDecoder().decode(query.stdout));
    assert.equal(queried.length, 50);
    assert.ok(queried.every((r) => r.plugin === "writer"));

    // tail: the 3 newest, then every new record, in order, without gaps or repeats.
    const seen: number[] = [];
    const reader = tail.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    const target = n + 400;
    while (seen.length === 0 || (seen.at(-1)! < target && seen.length < 100_000)) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) seen.push((JSON.parse(line).properties as { n: number }).n);
    }
    assert.ok(seen.at(-1)! >= target, `tail stopped at ${seen.at(-1)}`);
    for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[i - 1]! + 1, `gap at ${i}`);
    tail.kill("SIGTERM");
    await reader.cancel();
    const status = await tail.status;
    assert.equal(status.code, 0, "tail stops cleanly on SIGTERM");
    await tail.stderr.cancel();
  } finally {
    clearInterval(writer);
  }
});

Deno.test("a database locked by another connection does not stall plugin calls", async () => {
  // busy_timeout_ms 5000: a writer on the host's thread would freeze every call for the whole
  // time the lock is held; the worker waits instead.
  await using home = await homeWithBehave({
    logging: { level: "info", store: { flush_interval_ms: 20, busy_timeout_ms: 5_000 } },
  });
  const { config } = await loadConfig(home.configPath);
  await using logs = await storeLogging(config);
  await using host = await home.startHost();
  await host.call("behave", "log", { level: "info", message: "warm-up" });
  await flushWithin(logs.sink);
  const written = logs.sink.stats.written;

  const other = new DatabaseSync(config.logging.store.db_file);
  const latencies: number[] = [];
  try {
    other.exec("BEGIN IMMEDIATE");
    const end = Date.now() + 1_500;
    let i = 0;
    while (Date.now() < end) {
      const t = performance.now();
      await host.call("behave", "log", { level: "info", message: `during lock ${i++}` });
      latencies.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 5)); // stay below queue_size: this is not about drops
    }
    assert.equal(logs.sink.stats.written, written, "nothing was written while locked");
  } finally {
    other.exec("COMMIT");
    other.close();
  }
  assert.ok(latencies.length >= 20, `only ${latencies.length} calls completed during the lock`);
  assert.ok(Math.max(...latencies) < 1_000, `a call took ${Math.max(...latencies)} ms`);
  const found = () => logs.store.query({ grep: "during lock", limit: 100_000 }).length;
  await waitFor(async () => {
    await flushWithin(logs.sink);
    return found() === latencies.length;
  }, 10_000);
  assert.equal(
    found(),
    latencies.length,
    "every record logged during the lock is written after it",
  );
  assert.equal(logs.sink.stats.dropped, 0);
});

Deno.test("a writer killed with SIGKILL mid-batch leaves an intact database with every committed record", async () => {
  await using home = await makeHome();
  const child = join(home.dir, "writer.ts");
  await Deno.writeTextFile(
    child,
    `import { getLogStoreSink, LogStore } from ${JSON.stringify(join(ROOT, "src/logs/mod.ts"))};
const [path, synchronous] = Deno.args;
const store = await LogStore.open(path, { synchronous });
const sink = getLogStoreSink(store, { queueSize: 50_000, batchSize: 500, flushIntervalMs: 5 });
let i = 0;
let last = 0;
const enc = new TextEncoder();
setInterval(() => {
  for (let k = 0; k < 1000; k++, i++) {
    const message = "record " + i + " " + "x".repeat(150);
    sink({ category: ["plugsconc", "plugin", "w"], level: "info", message: ["", message, ""],
      rawMessage: "{message}", timestamp: Date.now(), properties: { plugin: "w", message, i } });
  }
  // The last sequence number the writer reported committed.
  if (sink.stats.lastSeq !== last) {
    last = sink.stats.lastSeq;
    Deno.stdout.writeSync(enc.encode(last + "\\n"));
  }
}, 2);
`,
  );
  const runs = ["OFF", "NORMAL", "FULL"].map(async (mode) => {
    const path = join(home.dir, `kill-${mode}.db`);
    const proc = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", join(ROOT, "deno.json"), child, path, mode],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let committed = 0;
    let buffered = "";
    const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (committed < 20_000) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const l of lines) committed = Math.max(committed, Number(l));
    }
    proc.kill("SIGKILL");
    const status = await proc.status;
    await reader.cancel();
    const stderr = await new Response(proc.stderr).text();
    assert.equal(status.signal, "SIGKILL", stderr);
    assert.ok(committed >= 20_000, `${mode}: the writer committed only ${committed}: ${stderr}`);

    const db = new DatabaseSync(path);
    try {
      const check = db.prepare("PRAGMA integrity_check").all() as { integrity_check: string }[];
      assert.deepEqual(check.map((r) => r.integrity_check), ["ok"], mode);
      const row = db.prepare("SELECT count(*) AS n, max(seq) AS top FROM logs WHERE seq <= ?")
        .get(committed) as { n: number; top: number };
      assert.equal(row.n, committed, `${mode}: every committed record is present`);
      const last = db.prepare("SELECT message FROM logs WHERE seq = ?").get(committed) as {
        message: string;
      };
      assert.ok(last.message.startsWith(`record ${committed - 1} `), mode);
    } finally {
      db.close();
    }
  });
  await Promise.all(runs);
});

Deno.test("parseTimeArg() takes durations back from now and dates", () => {
  const now = Date.UTC(2025, 0, 31, 12, 0, 0);
  assert.equal(parseTimeArg("15m", now), now - 15 * 60_000);
  assert.equal(parseTimeArg("2h", now), now - 2 * 3_600_000);
  assert.equal(parseTimeArg("1d", now), now - 86_400_000);
  assert.equal(parseTimeArg("1h30m", now), now - 90 * 60_000);
  assert.equal(parseTimeArg("500ms", now), now - 500);
  assert.equal(parseTimeArg("now", now), now);
  assert.equal(parseTimeArg("2025-01-30T00:00:00Z", now), Date.UTC(2025, 0, 30));
  for (const bad of ["", "15", "m", "yesterday", "2025-13-45"]) {
    assert.throws(() => parseTimeArg(bad, now), { code: "USAGE" }, bad);
  }
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(12), "12 B");
  assert.equal(formatAge(90_061_000), "1d 1h");
  assert.equal(formatAge(65_000), "1m 5s");
});

Deno.test("a 10 MiB stderr line and invalid UTF-8 from a real plugin are stored cut and replaced; the host goes on", async () => {
  await using home = await homeWithBehave();
  const { config } = await loadConfig(home.configPath);
  await using logs = await storeLogging(config);
  await using host = await home.startHost();
  assert.equal(await host.call("behave", "stderrHuge", { mb: 10 }), true);
  assert.ok(
    await waitFor(async () => {
      await flushWithin(logs.sink);
      return logs.store.query({ plugin: "behave", grep: "bad " }).length > 0;
    }, 10_000),
    "the invalid UTF-8 line never arrived",
  );
  const [huge] = logs.store.query({ plugin: "behave", grep: "xxxxxxxx" });
  assert.ok(huge, "the huge line is not stored");
  assert.ok(huge.message.length < 100 * 1024, `stored ${huge.message.length} characters`);
  assert.match(huge.message, /…\[truncated \d+ bytes\]$/);
  const [bad] = logs.store.query({ plugin: "behave", grep: "bad " });
  assert.equal(bad!.message, "bad \ufffd\ufffd \ufffd");
  // The plugin and the host are fine.
  assert.deepEqual(await host.call("behave", "echo", { after: true }), { after: true });
});
