/**
 * From the `logging.store` config section to the options of the store ({@link logStoreOptions})
 * and of its sink ({@link logStoreSinkOptions}).
 *
 * @module
 */
import type { Config } from "../config/mod.ts";
import type { LogStoreOptions } from "./log_store.ts";
import type { LogStoreSinkOptions } from "./store_sink_options.ts";

/** The `logging.store` section of the config. */
export type StoreConfig = Config["logging"]["store"];

/** Store options from the `logging.store` config section. */
export function logStoreOptions(config: StoreConfig): LogStoreOptions {
  return { synchronous: config.synchronous };
}

/** Sink options from the `logging.store` config section. */
export function logStoreSinkOptions(config: StoreConfig): LogStoreSinkOptions {
  return {
    queueSize: config.queue_size,
    batchSize: config.batch_size,
    flushIntervalMs: config.flush_interval_ms,
    retentionDays: config.retention_days,
    maxRows: config.max_rows,
    retentionIntervalMs: config.retention_interval_ms,
    busyTimeoutMs: config.busy_timeout_ms,
    maxBytes: config.max_bytes,
  };
}
