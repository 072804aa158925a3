/**
 * Logging: LogTape set-up for the process (console, rotating file, extra sinks) and the
 * persistent SQLite log store with its asynchronous sink, retention and byte cap.
 * Library code never configures logging; it calls `getLogger(["plugsconc", component])`.
 *
 * @module
 */
export {
  consoleFormatter,
  getWriterSink,
  type LoggingConfig,
  setupLogging,
  type SetupLoggingOptions,
} from "./setup_logging.ts";
export {
  type AppendResult,
  LogStore,
  type LogStoreOptions,
  type NewLogEntry,
  type StoreSynchronous,
} from "./log_store.ts";
export { LogStoreError, type LogStoreErrorCode } from "./log_store_error.ts";
export { escapeLike, type LogEntry, type LogQuery } from "./log_query.ts";
export type { LogStoreStats } from "./store_stats.ts";
export { SCHEMA_VERSION } from "./migrations.ts";
export { getLogStoreSink, type LogStoreSink, type LogStoreSinkStats } from "./store_sink.ts";
export type { LogStoreSinkOptions } from "./store_sink_options.ts";
export { logStoreOptions, logStoreSinkOptions, type StoreConfig } from "./store_config.ts";
export {
  capSize,
  pruneRetention,
  type RetentionPolicy,
  type SizeCapPlan,
  sizeCapPlan,
  type SizeCapResult,
} from "./retention.ts";
export { estimateRecordBytes } from "./record_size.ts";
export {
  decodeText,
  levelName,
  levelNumber,
  MAX_TEXT_BYTES,
  renderMessage,
  safeJson,
  sanitizeText,
  truncateUtf8,
} from "./record_text.ts";
export { type HostLogging, setupHostLogging } from "./setup_host_logging.ts";
