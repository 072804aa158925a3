/**
 * The gateway's `/healthz` and `/metrics` against real plugin processes, `/metrics` parsed by
 * the strict exposition parser of `_prometheus.ts`.
 */
import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { setupHostLogging } from "../src/logs/mod.ts";
import { Gateway } from "../src/server/mod.ts";
import { makeHome } from "./_helpers.ts";
import { assertError, BEHAVE, get, post } from "./_gateway.ts";
import { parsePrometheus } from "./_prometheus.ts";

Deno.test("/healthz flips to 503 when a plugin stops and /metrics counters match the calls made", async (t) => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(BEHAVE);
  await using host = await home.startHost();
  await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
  const base = gateway.url;

  await t.step("the counters of /metrics are the calls made", async () => {
    for (let i = 0; i < 3; i++) {
      assert.equal((await post(base, "/v1/plugins/behave/echo", [i])).status, 200);
    }
    for (let i = 0; i < 2; i++) {
      assert.equal((await post(base, "/v1/plugins/behave/fail", {})).status, 500);
    }
    assert.equal((await post(base, "/v1/plugins/behave/nope", {})).status, 404);
    const m = await get(base, "/metrics");
    assert.equal(m.status, 200);
    assert.equal(m.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const families = parsePrometheus(m.text);
    const value = (family: string, sample: string, labels: Record<string, string>) =>
      families.get(family)?.samples.find((s) =>
        s.name === sample && Object.entries(labels).every(([k, v]) => s.labels[k] === v) &&
        Object.keys(s.labels).length === Object.keys(labels).length
      )?.value;
    assert.equal(families.get("plugsconc_calls_total")?.type, "counter");
    assert.equal(
      value("plugsconc_calls_total", "plugsconc_calls_total", { plugin: "behave", method: "echo" }),
      3,
    );
    assert.equal(
      value("plugsconc_calls_total", "plugsconc_calls_total", { plugin: "behave", method: "fail" }),
      2,
    );
    assert.equal(
      value("plugsconc_call_successes_total", "plugsconc_call_successes_total", {
        plugin: "behave",
        method: "echo",
      }),
      3,
    );
    assert.equal(
      value("plugsconc_call_failures_total", "plugsconc_call_failures_total", {
        plugin: "behave",
        method: "fail",
        code: "PLUGIN_CALL_FAILED",
      }),
      2,
    );
    assert.equal(families.get("plugsconc_call_duration_seconds")?.type, "histogram");
    assert.equal(
      value("plugsconc_call_duration_seconds", "plugsconc_call_duration_seconds_count", {
        plugin: "behave",
        method: "echo",
      }),
      3,
    );
    const route = "/v1/plugins/{name}/{method}";
    const http = (status: string) =>
      value("plugsconc_http_requests_total", "plugsconc_http_requests_total", { route, status });
    assert.deepEqual([http("200"), http("500"), http("404")], [3, 2, 1]);
    assert.equal(
      value(
        "plugsconc_http_request_duration_seconds",
        "plugsconc_http_request_duration_seconds_count",
        { route },
      ),
      6,
    );
    assert.equal(value("plugsconc_plugin_up", "plugsconc_plugin_up", { plugin: "behave" }), 1);
    for (const f of families.values()) assert.ok(f.help !== undefined, `${f.name} has no HELP`);
  });

  await t.step(
    "with the log store's sink, /metrics reports its queue and written records",
    async () => {
      await using logging = await setupHostLogging(host.config, { write: () => {} });
      await using withStore = await Gateway.start(host, {
        listen: "127.0.0.1:0",
        logSink: logging.sink,
      });
      getLogger(["plugsconc", "test"]).warning("a record for the store");
      await logging.sink!.flush();
      const written = logging.sink!.stats.written;
      assert.ok(written >= 1);
      const families = parsePrometheus((await get(withStore.url, "/metrics")).text);
      const one = (name: string) => families.get(name)?.samples[0]?.value;
      assert.equal(families.get("plugsconc_log_records_written_total")?.type, "counter");
      assert.equal(one("plugsconc_log_records_written_total"), written);
      assert.equal(one("plugsconc_log_records_dropped_total"), 0);
      assert.equal(families.get("plugsconc_log_queue_depth")?.type, "gauge");
      assert.equal(one("plugsconc_log_store_degraded"), 0);
    },
  );

  await t.step("/healthz is 200 while behave is healthy and 503 once it is stopped", async () => {
    const up = await get(base, "/healthz");
    assert.equal(up.status, 200);
    assert.deepEqual(up.body, {
      status: "healthy",
      not_healthy: [],
      plugins: { behave: { status: "healthy", instances: 1 } },
    });
    await host.supervisor("behave")!.stop();
    const down = await get(base, "/healthz");
    assert.equal(down.status, 503);
    assert.equal(down.body.status, "offline");
    assert.deepEqual(down.body.not_healthy, ["behave"]);
    assert.equal(down.body.plugins.behave.status, "offline");
    assertError(await post(base, "/v1/plugins/behave/echo", {}), 503, "PLUGIN_UNAVAILABLE");
  });
});
