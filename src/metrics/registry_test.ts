import assert from "node:assert/strict";
import { MetricsRegistry } from "./registry.ts";

Deno.test("MetricsRegistry writes counters, gauges and histograms in the Prometheus text format", () => {
  const m = new MetricsRegistry();
  const calls = m.counter("plugsconc_calls_total", "Calls made.", ["plugin", "method"]);
  calls.inc(["cat", "speak"]);
  calls.labels("cat", "speak").inc(2);
  calls.inc(["dog", 'say "hi"\n']);
  m.gauge("plugsconc_up", "Up.", ["plugin"], (set) => set(["cat"], 1));
  const h = m.histogram("plugsconc_seconds", "Latency.", ["plugin"], [0.1, 1]);
  h.observe(["cat"], 0.05);
  h.observe(["cat"], 0.5);
  h.observe(["cat"], 5);
  assert.equal(
    m.prometheus(),
    [
      "# HELP plugsconc_calls_total Calls made.",
      "# TYPE plugsconc_calls_total counter",
      'plugsconc_calls_total{plugin="cat",method="speak"} 3',
      'plugsconc_calls_total{plugin="dog",method="say \\"hi\\"\\n"} 1',
      "# HELP plugsconc_seconds Latency.",
      "# TYPE plugsconc_seconds histogram",
      'plugsconc_seconds_bucket{plugin="cat",le="0.1"} 1',
      'plugsconc_seconds_bucket{plugin="cat",le="1"} 2',
      'plugsconc_seconds_bucket{plugin="cat",le="+Inf"} 3',
      'plugsconc_seconds_sum{plugin="cat"} 5.55',
      'plugsconc_seconds_count{plugin="cat"} 3',
      "# HELP plugsconc_up Up.",
      "# TYPE plugsconc_up gauge",
      'plugsconc_up{plugin="cat"} 1',
      "",
    ].join("\n"),
  );
});

Deno.test("MetricsRegistry refuses bad names, label counts, decreasing counters and kind clashes", () => {
  const m = new MetricsRegistry();
  assert.throws(() => m.counter("bad-name", "x"), RangeError);
  assert.throws(() => m.counter("ok_total", "x", ["le"]), RangeError);
  const c = m.counter("ok_total", "x", ["a"]);
  assert.throws(() => c.inc([]), /takes 1 label values/);
  assert.throws(() => c.inc(["x"], -1), /cannot go down/);
  assert.equal(m.counter("ok_total", "x", ["a"]), c, "the same name is the same counter");
  assert.throws(() => m.gauge("ok_total", "x"), /already exists/);
  m.remove(["x"]);
  assert.equal(c.get(["x"]), 0);
});
