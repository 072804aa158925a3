import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { RpcError } from "../rpc/mod.ts";
import { LogBudget, type LogBudgetClock } from "./log_budget.ts";
import { PluginLog } from "./plugin_log.ts";

/** LogTape into an array at `level` and up; a clock that moves when told. */
async function setup(level: "debug" | "info" = "debug") {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    contextLocalStorage: new AsyncLocalStorage(),
    sinks: { memory: (r) => void records.push(r) },
    loggers: [
      { category: ["plugsconc"], lowestLevel: level, sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "fatal", sinks: [] },
    ],
  });
  let now = 0;
  const clock: LogBudgetClock & { advance(ms: number): void } = {
    now: () => now,
    setTimeout: () => 0,
    clearTimeout: () => {},
    advance: (ms) => void (now += ms),
  };
  return { records, clock, [Symbol.asyncDispose]: () => reset() };
}

Deno.test("PluginLog turns $/log, stderr lines and protocol warnings into records of the plugin", async () => {
  await using t = await setup();
  const contexts = new Map([[7, { requestId: "r-7" }]]);
  const log = new PluginLog({
    plugin: "cat",
    budget: new LogBudget("cat", { clock: t.clock }),
    contextOf: (id) => contexts.get(id),
  });
  log.onLog({ level: "warn", message: "hi \x1b[2J", fields: { answer: 42 }, request: 7 });
  log.onLog({ level: "x".repeat(1e6), message: { not: "a string" } });
  log.onStderrLine("plain \x07 line");
  log.onStderrLine(JSON.stringify({ level: "error", message: "structured", deep: { a: [1] } }));
  log.onProtocolWarning(new RpcError("RPC_INVALID_JSON", "line 3 is not JSON"), 1);
  log.onUnknownNotification("$/" + "y".repeat(100_000));
  const [a, b, c, d, e, f] = t.records;
  assert.equal(t.records.length, 6);
  for (const r of t.records) {
    assert.deepEqual(r.category, ["plugsconc", "plugin", "cat"]);
    assert.equal(r.properties.plugin, "cat");
  }
  assert.equal(a!.level, "warning");
  assert.equal(a!.properties.message, "hi \\u001b[2J");
  assert.equal(a!.properties.answer, 42);
  assert.equal(a!.properties.requestId, "r-7");
  assert.equal(b!.level, "info");
  assert.equal(b!.properties.message, '{"not":"a string"}');
  assert.equal(c!.properties.message, "plain \\u0007 line");
  assert.equal(c!.properties.stream, "stderr");
  assert.equal(d!.level, "error");
  assert.deepEqual(d!.properties.deep, { a: [1] });
  assert.equal(e!.level, "warning");
  assert.equal(e!.properties.code, "RPC_INVALID_JSON");
  assert.equal(f!.level, "debug");
  assert.ok(String(f!.properties.method).length < 600);
});

Deno.test("PluginLog drops records over the budget before building them, and caps the others", async () => {
  await using t = await setup();
  const budget = new LogBudget("flood", {
    recordsPerS: 1_000,
    bytesPerS: 100_000,
    maxRecordBytes: 4_096,
    clock: t.clock,
  });
  const log = new PluginLog({ plugin: "flood", budget });
  const big = "x".repeat(8_000_000);
  // The first one passes (the bucket is full), capped; its 8 MB put the bucket in debt.
  log.onLog({ level: "info", message: "big 1", fields: { blob: { data: big } } });
  for (let i = 0; i < 100; i++) log.onLog({ message: `small ${i}` });
  log.onStderrLine("e".repeat(3_000));
  assert.equal(t.records.length, 1);
  const first = t.records[0]!;
  assert.equal(first.properties.blob, undefined);
  assert.ok(Number(first.properties.fields_truncated) >= 8_000_000);
  assert.equal(budget.dropped, 101);
  // Once the debt is paid (8 MB at 100 kB/s), records pass again.
  t.clock.advance(81_000);
  log.onLog({ message: "after" });
  assert.equal(t.records.at(-1)!.properties.message, "after");
  // A record the level filter drops costs no budget.
  await using u = await setup("info");
  const quiet = new LogBudget("q", { recordsPerS: 1, burstSeconds: 1, clock: u.clock });
  const log2 = new PluginLog({ plugin: "q", budget: quiet });
  for (let i = 0; i < 10; i++) log2.onLog({ level: "debug", message: "noise" });
  log2.onLog({ level: "info", message: "signal" });
  assert.deepEqual(u.records.map((r) => r.properties.message), ["signal"]);
  assert.equal(quiet.dropped, 0);
});

Deno.test("PluginLog's stderr line length leaves room below the cap for the splitter's marker", () => {
  const log = new PluginLog({
    plugin: "p",
    budget: new LogBudget("p", { maxRecordBytes: 65_536 }),
  });
  assert.ok(log.stderrLineBytes > 60_000 && log.stderrLineBytes < 65_536 - 1024);
});
