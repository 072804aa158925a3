/**
 * The plugin process runtime: spawn with a compiled sandbox, handshake, stderr and `$/log` to
 * logs (through a per-plugin log budget and record size cap), calls, stop (polite, then
 * forced), and supervision with a restart budget.
 *
 * @module
 */
export { findDenoBinary, findSetpriv, findSetsid, isCompiledBinary } from "./deno_binary.ts";
export { escapeControl, LineSplitter } from "./line_splitter.ts";
export {
  LogBudget,
  type LogBudgetClock,
  type LogBudgetConfig,
  type LogBudgetOptions,
  type LogBudgetSettings,
  type LogBudgetStats,
  pluginLogBudget,
} from "./log_budget.ts";
export { PluginLog, type PluginLogOptions } from "./plugin_log.ts";
export {
  PluginSocket,
  ROOT_CAPS_DROPPED,
  socketSupported,
  TRANSPORT_UNIX,
} from "./plugin_socket.ts";
export { RequestBudget, type RequestBudgetOptions } from "./request_budget.ts";
export { type CappedRecord, capRecord, jsonLength } from "./record_cap.ts";
export {
  HandshakeError,
  PluginCallCancelledError,
  PluginCallError,
  PluginCrashedError,
  PluginError,
  type PluginErrorDetails,
  PluginNotFoundError,
  PluginProtocolError,
  PluginTimeoutError,
  PluginUnavailableError,
  stderrSummary,
} from "./plugin_errors.ts";
export {
  type ExitInfo,
  PluginProcess,
  type PluginProcessOptions,
  type ReadyInfo,
} from "./plugin_process.ts";
export type { EndpointCallOptions, HealthAnswer, PluginEndpoint } from "./endpoint.ts";
export {
  type ChunkSink,
  MAX_STREAM_WINDOW,
  PluginStreams,
  type StreamCallOptions,
} from "./plugin_streams.ts";
export {
  StreamError,
  type StreamErrorCode,
  streamNotSupported,
  streamRequired,
} from "./stream_error.ts";
export type { CallContext } from "./call_context.ts";
export {
  describeFailure,
  type PluginState,
  PluginSupervisor,
  type PluginSupervisorOptions,
  type RestartPolicy,
} from "./plugin_supervisor.ts";
