/**
 * Logging: LogTape set-up for the process (console, rotating file, extra sinks).
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
