import assert from "node:assert/strict";
import { MetricsRegistry } from "../../metrics/mod.ts";
import { MetricHistory } from "./metric_history.ts";

function pipelineMetrics(registry: MetricsRegistry) {
  return {
    calls: registry.counter("plugsconc_calls_total", "calls", ["plugin", "method"]),
    failures: registry.counter("plugsconc_call_failures_total", "failures", [
      "plugin",
      "method",
      "code",
    ]),
    latency: registry.histogram("plugsconc_call_duration_seconds", "latency", [
      "plugin",
      "method",
    ]),
  };
}

Deno.test("MetricHistory gives calls/s, error rate and p50/p99 per interval per plugin", () => {
  const registry = new MetricsRegistry();
  const m = pipelineMetrics(registry);
  using history = new MetricHistory(registry);
  history.sample(1000);
  for (let i = 0; i < 100; i++) {
    m.calls.labels("cat", "speak").inc();
    m.latency.labels("cat", "speak").observe(i < 98 ? 0.0008 : 0.2);
  }
  m.failures.labels("cat", "speak", "PLUGIN_TIMEOUT").inc(5);
  history.sample(3000);
  const [s] = history.samples().cat!;
  assert.equal(s!.t, 3000);
  assert.equal(s!.callsPerSec, 50);
  assert.equal(s!.errorRate, 0.05);
  assert.equal(s!.p50, 1, "0.8 ms falls in the 1 ms bucket");
  assert.equal(s!.p99, 250, "the slowest 2% are in the 250 ms bucket");
  history.sample(5000);
  const quiet = history.samples().cat![1]!;
  assert.deepEqual([quiet.callsPerSec, quiet.errorRate, quiet.p50], [0, 0, null]);
});

Deno.test("MetricHistory keeps only the last samples and refuses bad options", () => {
  const registry = new MetricsRegistry();
  pipelineMetrics(registry).calls.labels("cat", "speak").inc();
  using history = new MetricHistory(registry, { keep: 2 });
  for (let t = 0; t <= 4000; t += 1000) history.sample(t);
  assert.deepEqual(history.samples().cat!.map((s) => s.t), [3000, 4000]);
  assert.throws(() => new MetricHistory(registry, { keep: 0 }), RangeError);
  assert.throws(() => new MetricHistory(registry, { intervalMs: -1 }), RangeError);
});
