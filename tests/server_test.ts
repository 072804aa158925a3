/**
 * The HTTP gateway against real plugin processes (`behave` and copies of it with their own
 * policies) on ephemeral loopback ports: calls, every error status, the token, start-up
 * refusals, client disconnects as `$/cancel`, request ids in host log records
 * (`/healthz` and `/metrics`: `server_metrics_test.ts`).
 */
import assert from "node:assert/strict";
import { type LogRecord } from "@logtape/logtape";
import { Gateway, ServerError } from "../src/server/mod.ts";
import { captureLogs, makeHome, waitFor } from "./_helpers.ts";

import {
  assertError,
  BEHAVE,
  cancelledCount,
  errorOf,
  gatewayHome,
  get,
  post,
  rawHttp,
  TOKEN,
  UUID,
} from "./_gateway.ts";

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
