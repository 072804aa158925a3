import assert from "node:assert/strict";
import { BulkheadFullError, CircuitOpenError, RateLimitedError } from "../pipeline/mod.ts";
import {
  PluginCallCancelledError,
  PluginCallError,
  PluginCrashedError,
  PluginNotFoundError,
  PluginTimeoutError,
  PluginUnavailableError,
} from "../runtime/mod.ts";
import { errorStatus } from "./error_status.ts";
import { HttpError } from "./http_error.ts";

Deno.test("errorStatus() maps each plugin and pipeline error to its status", () => {
  const cases: [unknown, number, string][] = [
    [new PluginNotFoundError("x", undefined, []), 404, "PLUGIN_NOT_FOUND"],
    [new PluginNotFoundError("x", "m", ["a"]), 404, "METHOD_NOT_FOUND"],
    [new RateLimitedError("x", "m", 10, 1), 429, "RATE_LIMITED"],
    [new PluginCallError("x", "m", { code: -32000, message: "boom" }), 500, "PLUGIN_CALL_FAILED"],
    [new PluginCallError("x", "m", { code: -32602, message: "bad" }), 400, "PLUGIN_CALL_FAILED"],
    [
      new PluginCrashedError({ plugin: "x", exitCode: 3, signal: null, stderr: [] }),
      502,
      "PLUGIN_CRASHED",
    ],
    [new CircuitOpenError("x", "m", 2500), 503, "CIRCUIT_OPEN"],
    [new PluginUnavailableError("x", "stopped", "stopped"), 503, "PLUGIN_UNAVAILABLE"],
    [new BulkheadFullError("x", "m", 1, 1), 503, "BULKHEAD_FULL"],
    [new PluginTimeoutError("x", "m", 100), 504, "PLUGIN_TIMEOUT"],
    [new PluginCallCancelledError("x", "m"), 499, "PLUGIN_CALL_CANCELLED"],
    [new HttpError(413, "BODY_TOO_LARGE", "big"), 413, "BODY_TOO_LARGE"],
  ];
  for (const [error, status, code] of cases) {
    const s = errorStatus(error, "r1");
    assert.deepEqual([s.status, s.code], [status, code], String(error));
  }
});

Deno.test("errorStatus() gives Retry-After in whole seconds, at least 1", () => {
  assert.equal(
    errorStatus(new RateLimitedError("x", "m", 1500, 1), "r").headers["retry-after"],
    "2",
  );
  assert.equal(errorStatus(new RateLimitedError("x", "m", 1, 1), "r").headers["retry-after"], "1");
  assert.equal(errorStatus(new CircuitOpenError("x", "m", 9001), "r").headers["retry-after"], "10");
});

Deno.test("errorStatus() hides an unexpected error behind INTERNAL with the request id", () => {
  const s = errorStatus(new Error("secret path /etc/x"), "req-42");
  assert.equal(s.status, 500);
  assert.equal(s.code, "INTERNAL");
  assert.doesNotMatch(s.message, /secret/);
  assert.match(s.message, /req-42/);
});
