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
  escapeLike,
  type LogEntry,
  type LogQuery,
  LogStore,
  LogStoreError,
  type LogStoreErrorCode,
  type LogStoreOptions,
  type LogStoreStats,
  type NewLogEntry,
  SCHEMA_VERSION,
  type StoreSynchronous,
} from "./log_store.ts";
export {
  getLogStoreSink,
  logStoreOptions,
  type LogStoreSink,
  type LogStoreSinkOptions,
  logStoreSinkOptions,
  type LogStoreSinkStats,
  type StoreConfig,
} from "./store_sink.ts";
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
