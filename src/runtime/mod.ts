/**
 * The plugin process runtime: spawn with a compiled sandbox, handshake, stderr to logs,
 * calls, stop (polite, then forced), and supervision with a restart budget.
 *
 * @module
 */
export { findDenoBinary, findSetpriv, findSetsid, isCompiledBinary } from "./deno_binary.ts";
export { escapeControl, LineSplitter } from "./line_splitter.ts";
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
export {
  describeFailure,
  type PluginState,
  PluginSupervisor,
  type PluginSupervisorOptions,
  type RestartPolicy,
} from "./plugin_supervisor.ts";
