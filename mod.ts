/**
 * plugsconc: run third-party Deno plugins, each in a sandbox compiled from its manifest.
 *
 * @example
 * ```ts
 * import { PluginHost } from "plugsconc";
 * await using host = await PluginHost.start({ configPath: "config.yaml" });
 * console.log(await host.call("cat", "speak", { loud: true }));
 * console.log(host.logs.query({ plugin: "cat", minLevel: "warning", limit: 20 }));
 * ```
 *
 * @module
 */
export { causeChain, errorToJSON, PlugsconcError } from "./src/errors/mod.ts";
export {
  type Config,
  ConfigError,
  type ConfigInput,
  ConfigSchema,
  loadConfig,
  type LoadConfigOptions,
  type LoadedConfig,
  maskSecrets,
  parseConfig,
  resolveConfig,
  type YamlIssue,
} from "./src/config/mod.ts";
export {
  type CallOptions,
  type HostHealth,
  type InstanceInfo,
  InvalidParamsError,
  type PluginClientShape,
  PluginConfigError,
  PluginHost,
  type PluginHostEvents,
  type PluginHostOptions,
  type PluginInfo,
  PluginStream,
  ProcessServiceError,
  type ProcessServiceErrorCode,
  type StreamOptions,
} from "./src/host/mod.ts";
export {
  HandshakeError,
  PluginCallCancelledError,
  PluginCallError,
  PluginCrashedError,
  PluginError,
  PluginNotFoundError,
  PluginProtocolError,
  type PluginState,
  PluginTimeoutError,
  PluginUnavailableError,
  StreamError,
  type StreamErrorCode,
} from "./src/runtime/mod.ts";
export {
  BulkheadFullError,
  CircuitOpenError,
  effectivePolicy,
  type HealthStatus,
  type PluginPolicy,
  RateLimitedError,
} from "./src/pipeline/mod.ts";
export { type MetricSnapshot, MetricsRegistry } from "./src/metrics/mod.ts";
export { Gateway, type GatewayOptions, HttpError, ServerError } from "./src/server/mod.ts";
export { ManifestError, type PluginDescriptor } from "./src/manifest/mod.ts";
export { checkSchema, compileSchema, generateTypes, type Validator } from "./src/schema/mod.ts";
export { SandboxError } from "./src/sandbox/mod.ts";
export {
  RemoteConfigError,
  RemoteError,
  type RemoteErrorCode,
  RemoteWorker,
  RemoteWorkerLostError,
  type RemoteWorkerOptions,
  type ServedPlugin,
} from "./src/remote/mod.ts";
export { IntegrityError } from "./src/integrity/mod.ts";
export {
  AuditError,
  type AuditEvent,
  type AuditQuery,
  type AuditRow,
  AuditTrail,
  type AuditVerdict,
  type CapabilityProposal,
  type PermissionReport,
} from "./src/audit/mod.ts";
export {
  type Job,
  type JobContext,
  type JobResult,
  PoolError,
  type PoolMetrics,
  WorkerPool,
  type WorkerPoolOptions,
} from "./src/pool/mod.ts";
export {
  getLogStoreSink,
  type HostLogging,
  type LogEntry,
  type LogQuery,
  LogStore,
  LogStoreError,
  type LogStoreSink,
  type LogStoreStats,
  setupHostLogging,
  setupLogging,
  type SetupLoggingOptions,
} from "./src/logs/mod.ts";
export { type CliIo, memoryIo, runCli } from "./src/cli/mod.ts";
export { VERSION } from "./src/version.ts";
