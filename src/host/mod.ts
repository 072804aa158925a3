/**
 * The plugin host: config -> discovery -> sandbox -> supervised processes -> calls.
 *
 * @module
 */
export type { CallOptions } from "./call_options.ts";
export type { PluginHostEvents } from "./host_events.ts";
export type { HostHealth } from "./host_health.ts";
export { type HostRuntime, prepareRuntime, sandboxContext } from "./host_runtime.ts";
export { PluginHost } from "./plugin_host.ts";
export { DEFAULT_STREAM_WINDOW, PluginStream, type StreamOptions } from "./plugin_stream.ts";
export { type ClientCall, makePluginClient, type PluginClientShape } from "./plugin_client.ts";
export { InvalidParamsError, PluginConfigError } from "./typed_method_errors.ts";
export {
  checkParams,
  configProblem,
  type ConfigureParams,
  configureParams,
} from "./typed_methods.ts";
export type { PluginHostOptions } from "./plugin_host_options.ts";
export type { HeldReload, InstanceInfo, PluginInfo, PluginInfoState } from "./plugin_info.ts";
export { summarizeGrants } from "./summarize_grants.ts";
export { ProcessService, type ProcessServiceOptions } from "./process_service.ts";
export { ProcessServiceError, type ProcessServiceErrorCode } from "./process_service_error.ts";
export { materializeSdk } from "./sdk_files.ts";
export {
  MAX_CALL_DEPTH,
  PluginCallServiceError,
  type PluginCallServiceErrorCode,
} from "./plugin_call_service.ts";
