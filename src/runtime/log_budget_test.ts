import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { MetricsRegistry } from "../metrics/mod.ts";
import { LogBudget, type LogBudgetClock, pluginLogBudget } from "./log_budget.ts";

/** A clock whose time moves only when told; timers fire as time passes them. */
function fakeClock(): LogBudgetClock & { advance(ms: number): void; pending(): number } {
  let now = 1_000;
  let next = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimeout(fn, ms) {
      const id = next++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (id) => void timers.delete(id as number),
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = [...timers].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (due === undefined) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = end;
    },
    pending: () => timers.size,
  };
}

/** A logger that keeps its warnings. */
function warnings(): {
  logger: Logger;
  records: { message: string; props: Record<string, unknown> }[];
} {
  const records: { message: string; props: Record<string, unknown> }[] = [];
  const logger = {
    warning(message: string, props: Record<string, unknown>) {
      records.push({ message, props });
    },
  } as unknown as Logger;
  return { logger, records };
}

/** Offers `n` records of `bytes` each; returns how many passed. */
function offer(budget: LogBudget, n: number, bytes: number): number {
  let passed = 0;
  for (let i = 0; i < n; i++) {
    if (budget.take()) {
      budget.spend(bytes);
      passed++;
    } else budget.drop(bytes);
  }
  return passed;
}

Deno.test("LogBudget lets a burst of 2 s of records through, then records_per_s", () => {
  const clock = fakeClock();
  const { logger } = warnings();
  const budget = new LogBudget("p", { recordsPerS: 100, bytesPerS: 1e9, clock, logger });
  assert.equal(offer(budget, 500, 10), 200); // the burst: 2 s worth
  clock.advance(1_000);
  assert.equal(offer(budget, 500, 10), 100);
  clock.advance(500);
  assert.equal(offer(budget, 500, 10), 50);
  // Over a long run the average is the rate.
  let passed = 0;
  for (let i = 0; i < 100; i++) {
    clock.advance(100);
    passed += offer(budget, 50, 10);
  }
  assert.equal(passed, 1000); // 10 s at 100/s
  assert.equal(budget.stats.passed, 200 + 100 + 50 + 1000);
  assert.equal(budget.dropped, 1500 + 5000 - 1350);
});

Deno.test("LogBudget limits bytes_per_s by the size each record spends, into debt", () => {
  const clock = fakeClock();
  const { logger } = warnings();
  const budget = new LogBudget("p", {
    recordsPerS: 1e6,
    bytesPerS: 1000,
    maxRecordBytes: 256,
    clock,
    logger,
  });
  // 2,000 bytes of burst: 20 records of 100 bytes.
  assert.equal(offer(budget, 100, 100), 20);
  clock.advance(1_000);
  assert.equal(offer(budget, 100, 100), 10);
  // A record may take the bucket into debt; then nothing passes until the debt is paid.
  clock.advance(100); // 100 bytes back
  assert.equal(offer(budget, 1, 250), 1);
  assert.equal(offer(budget, 5, 1), 0);
  clock.advance(150); // back to 0: still nothing (the bucket must be above 0)
  assert.equal(offer(budget, 1, 1), 0);
  clock.advance(10);
  assert.equal(offer(budget, 1, 1), 1);
  const s = budget.stats;
  assert.equal(s.passedBytes, 2000 + 1000 + 250 + 1);
  assert.equal(s.droppedBytes, 80 * 100 + 90 * 100 + 5 + 1);
});

Deno.test("LogBudget reports drops once per report interval, as one warning with counts", () => {
  const clock = fakeClock();
  const { logger, records } = warnings();
  const counted: number[] = [];
  const budget = new LogBudget("cat", {
    recordsPerS: 10,
    bytesPerS: 1e9,
    reportIntervalMs: 10_000,
    clock,
    logger,
    onDrop: (n) => counted.push(n),
  });
  offer(budget, 25, 7); // 20 pass, 5 dropped
  assert.equal(records.length, 0, "reported before the interval ended");
  clock.advance(5_000);
  offer(budget, 100, 7); // 20 pass (a full burst again), 80 dropped
  clock.advance(4_999);
  assert.equal(records.length, 0);
  clock.advance(1);
  assert.equal(records.length, 1);
  const r = records[0]!;
  assert.equal(
    r.message,
    "plugin {plugin}: {dropped} log records ({droppedBytes} bytes) over its log budget were " +
      "dropped in the last {seconds} s",
  );
  assert.equal(r.props.plugin, "cat");
  assert.equal(r.props.dropped, 85);
  assert.equal(r.props.droppedBytes, 85 * 7);
  assert.equal(r.props.seconds, 10);
  assert.equal(counted.length, 85);
  // Nothing dropped: no report, no timer left.
  clock.advance(60_000);
  assert.equal(records.length, 1);
  assert.equal(clock.pending(), 0);
  // A flood that goes on: one report per interval, never more.
  for (let i = 0; i < 300; i++) {
    offer(budget, 100, 1);
    clock.advance(100);
  }
  assert.equal(records.length, 1 + 3);
  assert.equal(budget.stats.reports, 4);
  // flush() reports what is pending at once (a process exiting) and clears the timer.
  offer(budget, 1_000, 1);
  budget.flush();
  assert.equal(records.length, 5);
  assert.equal(records[4]!.props.seconds, 0);
  assert.equal(clock.pending(), 0);
  budget.flush();
  assert.equal(records.length, 5);
});

Deno.test("LogBudget.fromConfig() puts the plugin's overrides over logging.plugin_budget", () => {
  const clock = fakeClock();
  const budget = LogBudget.fromConfig(
    "p",
    { records_per_s: 500, bytes_per_s: 1e9, max_record_bytes: 65536, report_interval_ms: 10_000 },
    { records_per_s: 5, max_record_bytes: 1024 },
    { clock, logger: warnings().logger },
  );
  assert.equal(budget.maxRecordBytes, 1024);
  assert.equal(offer(budget, 100, 1), 10);
});

Deno.test("LogBudget refuses rates that are not positive numbers", () => {
  for (const bad of [0, -1, NaN, Infinity]) {
    assert.throws(() => new LogBudget("p", { recordsPerS: bad }), RangeError);
    assert.throws(() => new LogBudget("p", { bytesPerS: bad }), RangeError);
    assert.throws(() => new LogBudget("p", { reportIntervalMs: bad }), RangeError);
  }
});

Deno.test("pluginLogBudget() reads the config and counts drops in plugsconc_plugin_log_dropped_total", () => {
  const metrics = new MetricsRegistry();
  const base = {
    records_per_s: 1,
    bytes_per_s: 1e6,
    max_record_bytes: 65536,
    report_interval_ms: 10,
  };
  const config = {
    logging: { plugin_budget: base },
    plugins: { cat: { log_budget: { records_per_s: 2 } } },
  };
  const cat = pluginLogBudget("cat", config, metrics);
  const dog = pluginLogBudget("dog", config, metrics);
  assert.equal(offer(cat, 10, 1), 4);
  assert.equal(offer(dog, 10, 1), 2);
  const counter = metrics.counter("plugsconc_plugin_log_dropped_total", "", ["plugin"]);
  assert.equal(counter.get(["cat"]), 6);
  assert.equal(counter.get(["dog"]), 8);
  assert.match(metrics.prometheus(), /plugsconc_plugin_log_dropped_total\{plugin="cat"\} 6/);
  cat.flush();
  dog.flush();
});
