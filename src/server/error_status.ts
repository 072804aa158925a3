import { PlugsconcError } from "../errors/mod.ts";
import { PluginCallError } from "../runtime/mod.ts";
import { HttpError } from "./http_error.ts";

/** What the gateway answers for an error: status, code, message and extra headers. */
export interface ErrorStatus {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * nginx's "client closed request": never seen by the client (it is gone), but it keeps
 * cancelled calls apart from real failures in the access log and `plugsconc_http_requests_total`.
 */
export const CLIENT_CLOSED_REQUEST = 499;

/**
 * The status of each error code a call can fail with.
 *
 * A handler that threw (`PLUGIN_CALL_FAILED`) is 500, not 502: the plugin answered with a
 * well-formed JSON-RPC error, so the application failed, not the path to it (RFC 9110 §15.6.3
 * keeps 502 for an invalid answer from upstream); clients and load balancers also retry
 * 502/503/504 as transient, and a handler error usually is not. A crash or a protocol
 * violation, where no valid answer came back, is 502.
 */
const STATUS: Readonly<Record<string, number>> = {
  INVALID_PARAMS: 400,
  PLUGIN_NOT_FOUND: 404,
  METHOD_NOT_FOUND: 404,
  RATE_LIMITED: 429,
  PLUGIN_CALL_FAILED: 500,
  PLUGIN_CRASHED: 502,
  PLUGIN_PROTOCOL: 502,
  PLUGIN_HANDSHAKE: 502,
  CIRCUIT_OPEN: 503,
  PLUGIN_UNAVAILABLE: 503,
  BULKHEAD_FULL: 503,
  PLUGIN_START: 503,
  PLUGIN_TIMEOUT: 504,
  PLUGIN_CALL_CANCELLED: CLIENT_CLOSED_REQUEST,
  // A plain call of a streaming method: the client must accept a stream.
  STREAM_REQUIRED: 406,
  STREAM_NOT_SUPPORTED: 501,
  STREAM_PROTOCOL: 502,
  STREAM_IDLE: 504,
  STREAM_NOT_READ: 504,
};

/** JSON-RPC "invalid params": the caller sent what the handler refuses. */
const RPC_INVALID_PARAMS = -32602;

/**
 * Maps an error to the gateway's answer. `HttpError`s carry their own status; plugin and
 * pipeline errors map by code (see the table above); `RATE_LIMITED` and `CIRCUIT_OPEN` add
 * `Retry-After` in whole seconds (at least 1); anything else is a 500 `INTERNAL` whose
 * message hides the details (they go to the log) and names the request id.
 *
 * @example
 * ```ts
 * errorStatus(new RateLimitedError("cat", "speak", 1500, 1), "r1");
 * // { status: 429, code: "RATE_LIMITED", message: "...", headers: { "retry-after": "2" } }
 * ```
 */
export function errorStatus(error: unknown, requestId: string): ErrorStatus {
  if (error instanceof HttpError) {
    return {
      status: error.status,
      code: error.code,
      message: error.message,
      headers: error.headers,
    };
  }
  if (error instanceof PlugsconcError && STATUS[error.code] !== undefined) {
    let status = STATUS[error.code]!;
    if (error instanceof PluginCallError && error.remoteCode === RPC_INVALID_PARAMS) status = 400;
    const headers: Record<string, string> = {};
    const retryAfterMs = error.details.retryAfterMs;
    if ((status === 429 || status === 503) && typeof retryAfterMs === "number") {
      headers["retry-after"] = String(Math.max(1, Math.ceil(retryAfterMs / 1000)));
    }
    return { status, code: error.code, message: error.message, headers };
  }
  return {
    status: 500,
    code: "INTERNAL",
    message: `internal error of the gateway; the host's logs have it under request id ${requestId}`,
    headers: {},
  };
}
