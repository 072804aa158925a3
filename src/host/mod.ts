/**
 * The plugin host: config -> discovery -> sandbox -> supervised processes -> calls.
 *
 * @module
 */
export {
  type CallOptions,
  type HostHealth,
  type HostRuntime,
  type InstanceInfo,
  PluginHost,
  type PluginHostEvents,
  type PluginHostOptions,
  type PluginInfo,
  prepareRuntime,
  sandboxContext,
  summarizeGrants,
} from "./plugin_host.ts";
export { ProcessService, type ProcessServiceOptions } from "./process_service.ts";
export { ProcessServiceError, type ProcessServiceErrorCode } from "./process_service_error.ts";
export { materializeSdk } from "./sdk_files.ts";
