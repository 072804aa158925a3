/**
 * The HTTP gateway: plugin calls (`POST /v1/plugins/{name}/{method}`), plugin state
 * (`GET /v1/plugins[/{name}]`), health (`GET /healthz`) and Prometheus metrics
 * (`GET /metrics`) over `Deno.serve`, with a constant-time bearer token, a streamed body limit,
 * request ids in every log record of a request, and client disconnects as `$/cancel`.
 *
 * @example
 * ```ts
 * import { Gateway } from "./mod.ts";
 * await using gateway = await Gateway.start(host, host.config.server);
 * console.log(`HTTP gateway on ${gateway.url}`);
 * ```
 * @module
 */
export { type AuthResult, BearerAuth } from "./bearer_auth.ts";
export { CLIENT_CLOSED_REQUEST, type ErrorStatus, errorStatus } from "./error_status.ts";
export { checkListen } from "./check_listen.ts";
export { Gateway, type GatewayHost, type GatewayOptions, type ServerConfig } from "./gateway.ts";
export { GatewayMetrics, type RouteLabel } from "./gateway_metrics.ts";
export { HttpError, type HttpErrorCode } from "./http_error.ts";
export {
  hostOfHeader,
  isLoopbackHost,
  type ListenAddress,
  parseListenAddress,
} from "./listen_address.ts";
export {
  type CallCounters,
  type PluginCalls,
  type PluginView,
  pluginViews,
} from "./plugin_view.ts";
export { readJsonBody, type ReadJsonBodyOptions } from "./read_json_body.ts";
export { MAX_REQUEST_ID_LENGTH, requestIdOf } from "./request_id.ts";
export { ServerError, type ServerErrorCode } from "./server_error.ts";
export { readTlsFiles, type TlsFiles, type TlsPaths } from "./tls_files.ts";
