/**
 * The HTTP gateway against real plugin processes (`behave` and copies of it with their own
 * policies) on ephemeral loopback ports: calls, every error status, the token, start-up
 * refusals, client disconnects as `$/cancel`, request ids in host log records, `/healthz` and
 * `/metrics` (parsed by the strict exposition parser below).
 *
 * The Prometheus parser is ours: the one npm package for the text format
 * (`parse-prometheus-text-format` 1.1.1) accepts `garbage line here {` as a sample and
 * `notanumber` as a value, and drops every labelled histogram series after the first, so a
 * test built on it could not fail on the faults it is meant to catch.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { getLogger, type LogRecord } from "@logtape/logtape";
import type { PluginHost } from "../src/host/mod.ts";
import { setupHostLogging } from "../src/logs/mod.ts";
import { Gateway, ServerError } from "../src/server/mod.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";

const BEHAVE = join(FIXTURE_PLUGINS, "behave");
const TOKEN = "test-token-0123456789abcdef";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

/** POSTs `body` (JSON unless a string) to `base` + `path` and reads the JSON answer. */
async function post(
  base: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(base + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

async function get(base: string, path: string, headers: Record<string, string> = {}) {
  const response = await fetch(base + path, { headers });
  const text = await response.text();
  const json = response.headers.get("content-type")?.startsWith("application/json");
  return {
    status: response.status,
    headers: response.headers,
    text,
    body: json ? JSON.parse(text) : undefined,
  };
}

/**
 * Sends `head` as is on a new loopback connection and reads the answer (until its JSON body
 * is complete or the server closes): for requests `fetch` will not send.
 */
async function rawHttp(port: number, head: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head));
    let text = "";
    const buf = new Uint8Array(4096);
    while (!/\r\n\r\n[\s\S]*\}\}/.test(text)) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}

function errorOf(a: Answer): { code: string; message: string } {
  assert.ok(a.body.error !== undefined, `no error in ${JSON.stringify(a.body)}`);
  return a.body.error as { code: string; message: string };
}

function assertError(a: Answer, status: number, code: string): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(errorOf(a).code, code);
  assert.ok(errorOf(a).message.length > 0);
  assert.match(a.headers.get("x-request-id") ?? "", UUID);
}

/** The home of most tests: behave, plus `limited` (rate limited) and `fragile` (breaker at 1). */
async function gatewayHome() {
  const home = await makeHome({
    watcher: { enabled: false },
    defaults: { restart: { initial_backoff_ms: 20 } },
    server: { max_body_bytes: 1024 },
    plugins: {
      // Longer than any wait below: a cancellation the plugin sees is the gateway's doing.
      behave: { circuit_breaker: { enabled: false }, timeout_ms: 300_000 },
      limited: { rate_limit: { rps: 0.1, burst: 1 } },
      fragile: {
        retry: { max_attempts: 1 },
        circuit_breaker: { failure_threshold: 1, recovery_ms: 600_000 },
      },
    },
  });
  await home.addPlugin(BEHAVE);
  await home.addPlugin(BEHAVE, { as: "limited" });
  await home.addPlugin(BEHAVE, { as: "fragile" });
  return home;
}

async function cancelledCount(host: PluginHost): Promise<number> {
  return (await host.call("behave", "cancelled") as unknown[]).length;
}

Deno.test("the gateway serves calls and answers each failure with its status", async (t) => {
  await using home = await gatewayHome();
  await using host = await home.startHost();
  await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
  const base = gateway.url;
  assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(gateway.addr.port, 0);

  await t.step("a call answers {result} and echoes a sane X-Request-Id", async () => {
    const a = await post(base, "/v1/plugins/behave/echo", { n: 1, s: "é" }, {
      "x-request-id": "client-id-1",
    });
    assert.equal(a.status, 200);
    assert.deepEqual(a.body, { result: { n: 1, s: "é" } });
    assert.equal(a.headers.get("x-request-id"), "client-id-1");
    assert.equal(a.headers.get("content-type"), "application/json");
    const empty = await post(base, "/v1/plugins/behave/echo");
    assert.deepEqual(empty.body, { result: null }, "an empty body is a call without params");
    const generated = await post(base, "/v1/plugins/behave/echo", [1], {
      "x-request-id": "bad id with spaces",
    });
    assert.match(generated.headers.get("x-request-id")!, UUID);
  });

  await t.step(
    "bad JSON is 400, a body that is not params is 400, and a non-JSON type is 415",
    async () => {
      assertError(await post(base, "/v1/plugins/behave/echo", "{not json"), 400, "BAD_JSON");
      assertError(await post(base, "/v1/plugins/behave/echo", "42"), 400, "PARAMS_INVALID");
      assertError(
        await post(base, "/v1/plugins/behave/echo", "{}", { "content-type": "text/plain" }),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
      );
    },
  );

  await t.step("an unknown plugin, method or route is 404", async () => {
    assertError(await post(base, "/v1/plugins/nope/echo", {}), 404, "PLUGIN_NOT_FOUND");
    assertError(await post(base, "/v1/plugins/behave/nope", {}), 404, "METHOD_NOT_FOUND");
    assertError(await post(base, "/v1/plugins/behave/$", {}), 404, "NOT_FOUND");
    const route = await get(base, "/v2/whatever");
    assert.equal(route.status, 404);
    assert.equal(route.body.error.code, "NOT_FOUND");
    const plugin = await get(base, "/v1/plugins/nope");
    assert.equal(plugin.status, 404);
  });

  await t.step("a route asked with the wrong HTTP method is 405 with Allow", async () => {
    const a = await get(base, "/v1/plugins/behave/echo");
    assert.equal(a.status, 405);
    assert.equal(a.body.error.code, "METHOD_NOT_ALLOWED");
    assert.equal(a.headers.get("allow"), "POST");
    const b = await post(base, "/healthz", {});
    assert.equal(b.status, 405);
    assert.equal(b.headers.get("allow"), "GET, HEAD");
  });

  await t.step("a body over max_body_bytes is 413, declared or streamed", async () => {
    const big = JSON.stringify({ text: "x".repeat(2000) });
    assertError(await post(base, "/v1/plugins/behave/echo", big), 413, "BODY_TOO_LARGE");
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent++ < 200) c.enqueue(new TextEncoder().encode(sent === 1 ? "[" : '"xxxxxxxxxx",'));
        else c.close();
      },
    });
    const response = await fetch(base + "/v1/plugins/behave/echo", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: stream,
    });
    assertError(
      { status: response.status, headers: response.headers, body: await response.json() },
      413,
      "BODY_TOO_LARGE",
    );
    const fits = await post(base, "/v1/plugins/behave/echo", { text: "x".repeat(1000) });
    assert.equal(fits.status, 200, "a body under the limit still passes");
  });

  await t.step("a rate-limited call is 429 with Retry-After in seconds", async () => {
    assert.equal((await post(base, "/v1/plugins/limited/echo", {})).status, 200);
    const a = await post(base, "/v1/plugins/limited/echo", {});
    assertError(a, 429, "RATE_LIMITED");
    const after = Number(a.headers.get("retry-after"));
    assert.ok(Number.isInteger(after) && after >= 1 && after <= 10, `Retry-After ${after}`);
  });

  await t.step("a handler that throws is 500 PLUGIN_CALL_FAILED with its message", async () => {
    const a = await post(base, "/v1/plugins/behave/fail", { message: "told so" });
    assertError(a, 500, "PLUGIN_CALL_FAILED");
    assert.match(errorOf(a).message, /TypeError: told so/);
  });

  await t.step("an open circuit breaker is 503 with Retry-After", async () => {
    assertError(await post(base, "/v1/plugins/fragile/fail", {}), 500, "PLUGIN_CALL_FAILED");
    const a = await post(base, "/v1/plugins/fragile/echo", {});
    assertError(a, 503, "CIRCUIT_OPEN");
    assert.ok(Number(a.headers.get("retry-after")) >= 1);
  });

  await t.step("a client that disconnects cancels the plugin call ($/cancel)", async () => {
    const before = await cancelledCount(host);
    const controller = new AbortController();
    const pending = fetch(base + "/v1/plugins/behave/sleep", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ms: 120_000 }),
      signal: controller.signal,
    }).then(() => "answered", (e: unknown) => (e as Error).name);
    assert.ok(
      await waitFor(
        () => host.plugins().find((p) => p.name === "behave")!.instances[0]!.inFlight === 1,
        10_000,
      ),
      "the call never reached the plugin",
    );
    controller.abort();
    assert.equal(await pending, "AbortError");
    assert.ok(
      await waitFor(async () => await cancelledCount(host) === before + 1, 10_000),
      "the handler saw no cancellation",
    );
    const closed = host.metrics.counter("plugsconc_http_requests_total", "", ["route", "status"]);
    assert.ok(
      await waitFor(() => closed.get(["/v1/plugins/{name}/{method}", "499"]) === 1, 5000),
      "the gateway did not count the request as closed by the client",
    );
  });

  await t.step("a call past request_timeout_ms is 504 and the plugin is cancelled", async () => {
    await using short = await Gateway.start(host, {
      listen: "127.0.0.1:0",
      request_timeout_ms: 300,
    });
    const before = await cancelledCount(host);
    const a = await post(short.url, "/v1/plugins/behave/sleep", { ms: 120_000 });
    assertError(a, 504, "PLUGIN_TIMEOUT");
    assert.match(errorOf(a).message, /request_timeout_ms/);
    assert.ok(await waitFor(async () => await cancelledCount(host) === before + 1, 10_000));
  });

  await t.step(
    "GET /v1/plugins and /v1/plugins/{name} report state, policy, grants and counters",
    async () => {
      const list = await get(base, "/v1/plugins");
      assert.equal(list.status, 200);
      const names = list.body.plugins.map((p: { name: string }) => p.name).sort();
      assert.deepEqual(names, ["behave", "fragile", "limited"]);
      const one = await get(base, "/v1/plugins/limited");
      assert.equal(one.status, 200);
      const p = one.body;
      assert.equal(p.name, "limited");
      assert.equal(p.version, "1.0.0");
      assert.equal(p.state, "ready");
      assert.equal(p.health, "healthy");
      assert.equal(p.instances.length, 1);
      assert.equal(typeof p.instances[0].pid, "number");
      assert.equal(p.policy.rate_limit.rps, 0.1);
      assert.deepEqual(p.policy.idempotent, ["echo", "sleep"]);
      assert.equal(typeof p.grants, "string");
      assert.equal(p.dir, undefined, "host paths are not shown");
      assert.deepEqual(
        [p.calls.total, p.calls.succeeded, p.calls.failed, p.calls.failures_by_code],
        [2, 1, 1, { RATE_LIMITED: 1 }],
      );
      assert.deepEqual(p.calls.by_method.echo, { total: 2, succeeded: 1, failed: 1, in_flight: 0 });
    },
  );

  await t.step("a body that does not arrive within request_timeout_ms is 408", async () => {
    await using short = await Gateway.start(host, {
      listen: "127.0.0.1:0",
      request_timeout_ms: 300,
    });
    const text = await rawHttp(
      short.addr.port,
      "POST /v1/plugins/behave/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[1,",
    );
    assert.match(text, /^HTTP\/1\.1 408 /);
    assert.match(text, /REQUEST_TIMEOUT/);
  });

  await t.step("a crashed plugin is 502 PLUGIN_CRASHED", async () => {
    const a = await post(base, "/v1/plugins/behave/crash", { code: 7 });
    assertError(a, 502, "PLUGIN_CRASHED");
    assert.match(errorOf(a).message, /exited with code 7/);
  });

  await t.step("HEAD answers a GET route without a body", async () => {
    const r = await fetch(base + "/v1/plugins", { method: "HEAD" });
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "");
  });

  await t.step(
    "without a token, a Host that is not a loopback name is refused (DNS rebinding)",
    async () => {
      const text = await rawHttp(
        gateway.addr.port,
        "GET /v1/plugins HTTP/1.1\r\nHost: rebind.example:8787\r\nConnection: close\r\n\r\n",
      );
      assert.match(text, /^HTTP\/1\.1 403 /);
      assert.match(text, /HOST_NOT_ALLOWED/);
    },
  );
});

Deno.test("with a token, every route but /healthz needs it, and it is checked", async () => {
  await using home = await makeHome({ watcher: { enabled: false }, server: { token: TOKEN } });
  await home.addPlugin(BEHAVE);
  await using host = await home.startHost();
  await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
  const base = gateway.url;
  const missing = await post(base, "/v1/plugins/behave/echo", {});
  assertError(missing, 401, "TOKEN_MISSING");
  assert.match(missing.headers.get("www-authenticate")!, /^Bearer realm="plugsconc"$/);
  const wrong = await post(base, "/v1/plugins/behave/echo", {}, {
    authorization: `Bearer ${TOKEN.slice(0, -1)}X`,
  });
  assertError(wrong, 401, "TOKEN_INVALID");
  assert.match(wrong.headers.get("www-authenticate")!, /error="invalid_token"/);
  const right = await post(base, "/v1/plugins/behave/echo", { ok: 1 }, {
    authorization: `Bearer ${TOKEN}`,
  });
  assert.equal(right.status, 200);
  assert.deepEqual(right.body, { result: { ok: 1 } });
  for (const path of ["/metrics", "/v1/plugins", "/v1/plugins/behave"]) {
    assert.equal((await get(base, path)).status, 401, path);
    assert.equal((await get(base, path, { authorization: `Bearer ${TOKEN}` })).status, 200, path);
  }
  const health = await get(base, "/healthz");
  assert.equal(health.status, 200, "/healthz is open to probes");
  assert.equal(health.body.status, "healthy");
  assert.equal(
    host.metrics.counter("plugsconc_calls_total", "", ["plugin", "method"]).get(["behave", "echo"]),
    1,
    "refused requests never reached the plugin",
  );
});

Deno.test("Gateway.start() refuses a non-loopback listen without a token, and a port in use", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await using host = await home.startHost();
  // Only the start-up refusal is tested: no request is ever sent to a non-loopback address.
  for (const listen of ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"]) {
    await assert.rejects(Gateway.start(host, { listen }), (e: unknown) => {
      assert.ok(e instanceof ServerError, String(e));
      assert.equal(e.code, "SERVER_INSECURE");
      assert.match(e.message, /server\.token/);
      return true;
    }, listen);
  }
  await using first = await Gateway.start(host, { listen: "127.0.0.1:0" });
  await assert.rejects(
    Gateway.start(host, { listen: `127.0.0.1:${first.addr.port}` }),
    (e: unknown) => {
      assert.ok(e instanceof ServerError, String(e));
      assert.equal(e.code, "SERVER_ADDR_IN_USE");
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${first.addr.port}`));
      return true;
    },
  );
  await first.close();
  await first.close(); // idempotent
  await assert.rejects(fetch(first.url + "/healthz"), "closed means closed");
});

Deno.test("the request id reaches the gateway's and the host's log records of that call", async () => {
  await using home = await makeHome({
    watcher: { enabled: false },
    defaults: { retry: { max_attempts: 3, initial_delay_ms: 5 } },
  });
  await home.addPlugin(BEHAVE);
  await using host = await home.startHost();
  await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
  let records: LogRecord[];
  {
    await using logs = await captureLogs();
    records = logs.records;
    await post(gateway.url, "/v1/plugins/behave/setMode", { failNext: 1 });
    const a = await post(gateway.url, "/v1/plugins/behave/echo", { x: 1 }, {
      "x-request-id": "trace-abc",
    });
    assert.equal(a.status, 200, "succeeded on the retry");
  }
  const mine = records.filter((r) => r.properties.requestId === "trace-abc");
  const categories = mine.map((r) => r.category.join("."));
  assert.ok(categories.includes("plugsconc.http"), `the access record: ${categories}`);
  assert.ok(
    categories.includes("plugsconc.pipeline"),
    `the pipeline's retry record: ${categories}`,
  );
  const access = mine.find((r) => r.category.join(".") === "plugsconc.http")!;
  assert.equal(access.properties.status, 200);
  assert.equal(access.properties.plugin, "behave");
  assert.ok(
    !records.some((r) =>
      r.properties.requestId !== undefined && r.properties.requestId !== "trace-abc" &&
      r.category.join(".") === "plugsconc.pipeline"
    ),
    "the retry record carries only its own request's id",
  );
});

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

// ---- a strict parser of the Prometheus text format 0.0.4 ------------------------------------

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

interface Family {
  readonly name: string;
  help?: string;
  type?: string;
  readonly samples: Sample[];
}

const METRIC_NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL_NAME = "[a-zA-Z_][a-zA-Z0-9_]*";
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/**
 * Parses the text exposition format strictly: every line is a HELP, TYPE, comment, blank or
 * sample line; names, labels, escapes and values are checked; a family's TYPE comes before its
 * samples and its samples are contiguous; no series appears twice; histograms have `le` on
 * every bucket, cumulative counts, a `+Inf` bucket equal to `_count`, and `_sum`.
 *
 * @throws {SyntaxError} naming the line
 */
function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | undefined;
  const closed = new Set<string>();
  const familyOf = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) {
      if (closed.has(name)) throw new Error(`family ${name} is not contiguous`);
      f = { name, samples: [] };
      families.set(name, f);
    }
    if (current !== undefined && current !== f) closed.add(current.name);
    current = f;
    return f;
  };
  if (!text.endsWith("\n")) throw new SyntaxError("the exposition must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === "") return;
    const meta = new RegExp(`^# (HELP|TYPE) (${METRIC_NAME})(?: (.*))?$`).exec(line);
    if (meta) {
      const [, kind, name, rest = ""] = meta;
      const f = familyOf(name!);
      if (kind === "HELP") {
        if (f.help !== undefined) throw new SyntaxError(`second HELP, ${where}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) {
          throw new SyntaxError(`bad escape, ${where}`);
        }
        f.help = rest;
      } else {
        if (f.type !== undefined || f.samples.length > 0) {
          throw new SyntaxError(`late TYPE, ${where}`);
        }
        if (!TYPES.has(rest)) throw new SyntaxError(`unknown type, ${where}`);
        f.type = rest;
      }
      return;
    }
    if (line.startsWith("#")) return;
    const m = new RegExp(`^(${METRIC_NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`).exec(line);
    if (m === null) throw new SyntaxError(`not a sample, ${where}`);
    const [, name, labelText = "", valueText] = m;
    if (!FLOAT.test(valueText!)) throw new SyntaxError(`bad value, ${where}`);
    const labels = parseLabels(labelText, where);
    const family = familyFor(families, current, name!);
    if (family === undefined) throw new SyntaxError(`sample outside its family, ${where}`);
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${v}`).join(",")}}`;
    if (seen.has(key)) throw new SyntaxError(`duplicate series, ${where}`);
    seen.add(key);
    const value = valueText === "+Inf" || valueText === "Inf"
      ? Infinity
      : valueText === "-Inf"
      ? -Infinity
      : Number(valueText);
    family.samples.push({ name: name!, labels, value });
  });
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

/** The family a sample belongs to: its own name, or a histogram/summary's suffixed series. */
function familyFor(
  families: Map<string, Family>,
  current: Family | undefined,
  name: string,
): Family | undefined {
  if (current === undefined) return undefined;
  if (current.name === name && current.type !== "histogram") return current;
  if (current.type === "histogram" || current.type === "summary") {
    const suffixes = current.type === "histogram"
      ? ["_bucket", "_sum", "_count"]
      : ["_sum", "_count", ""];
    if (suffixes.some((s) => name === current.name + s)) return current;
  }
  return families.get(name) === current ? current : undefined;
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text === "") return labels;
  const re = new RegExp(`(${LABEL_NAME})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"(,|$)`, "y");
  let last = "";
  while (re.lastIndex < text.length) {
    const m = re.exec(text);
    if (m === null) throw new SyntaxError(`bad labels, ${where}`);
    const [, name, raw, comma] = m;
    if (name! in labels) throw new SyntaxError(`label ${name} twice, ${where}`);
    labels[name!] = raw!.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    last = comma!;
  }
  if (last === ",") throw new SyntaxError(`trailing comma, ${where}`);
  return labels;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name.endsWith("_bucket")) {
      if (le === undefined || !FLOAT.test(le)) {
        throw new SyntaxError(`${f.name}: bucket without le`);
      }
      entry.buckets.push([le === "+Inf" ? Infinity : Number(le), s.value]);
    } else if (le !== undefined) {
      throw new SyntaxError(`${s.name}: le on a non-bucket sample`);
    } else if (s.name.endsWith("_sum")) entry.sum = s.value;
    else entry.count = s.value;
  }
  for (const [key, e] of series) {
    const where = `${f.name}${key}`;
    if (e.sum === undefined || e.count === undefined) {
      throw new SyntaxError(`${where}: no _sum/_count`);
    }
    const last = e.buckets.at(-1);
    if (last?.[0] !== Infinity || last[1] !== e.count) {
      throw new SyntaxError(`${where}: +Inf != _count`);
    }
    for (let i = 1; i < e.buckets.length; i++) {
      const [le0, c0] = e.buckets[i - 1]!;
      const [le1, c1] = e.buckets[i]!;
      if (!(le1 > le0) || c1 < c0) throw new SyntaxError(`${where}: buckets not cumulative`);
    }
  }
}

Deno.test("the test's Prometheus parser refuses malformed expositions", () => {
  const ok = '# HELP a_total A.\n# TYPE a_total counter\na_total{x="1"} 2\n';
  assert.equal(parsePrometheus(ok).get("a_total")!.samples[0]!.value, 2);
  const bad = [
    "garbage line here {\n",
    "# TYPE a counter\na notanumber\n",
    '# TYPE a counter\na{x="1" 1\n',
    '# TYPE a counter\na{x="1",x="2"} 1\n',
    "# TYPE a counter\na 1\na 2\n",
    "# TYPE a counter\n# TYPE b counter\na 1\n",
    "# TYPE a counter\na 1\n# TYPE b gauge\nb 1\na 2\n",
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n',
    "# TYPE a counter\na 1",
  ];
  for (const text of bad) assert.throws(() => parsePrometheus(text), Error, JSON.stringify(text));
});
