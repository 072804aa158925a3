import type { Config } from "../config/mod.ts";
import { LogStore } from "./log_store.ts";
import { getLogStoreSink, type LogStoreSink } from "./store_sink.ts";
import { logStoreOptions, logStoreSinkOptions } from "./store_config.ts";
import { setupLogging, type SetupLoggingOptions } from "./setup_logging.ts";

/** What {@link setupHostLogging} set up; disposing it flushes the store and closes it. */
export interface HostLogging extends AsyncDisposable {
  /** The log store, when `logging.store.enabled`. */
  readonly store: LogStore | undefined;
  /** Its sink (queue and writer), when `logging.store.enabled`. */
  readonly sink: LogStoreSink | undefined;
}

/**
 * Logging for a long-running host (`run`, or an application embedding plugsconc): the console
 * and file sinks of {@link setupLogging}, plus the SQLite log store and its asynchronous sink
 * when `logging.store.enabled`. Disposal first stops LogTape (no new records), then writes
 * every queued record, then closes the database.
 *
 * @example
 * ```ts
 * await using logging = await setupHostLogging(config);
 * await using host = await PluginHost.start({ config, logStore: logging.store });
 * ```
 *
 * @throws {LogStoreError} when the database cannot be opened or created (the message names it)
 */
export async function setupHostLogging(
  config: Config,
  options: Omit<SetupLoggingOptions, "extraSinks"> = {},
): Promise<HostLogging> {
  const cfg = config.logging.store;
  if (!cfg.enabled) {
    const logging = await setupLogging(config.logging, options);
    return {
      store: undefined,
      sink: undefined,
      [Symbol.asyncDispose]: () => logging[Symbol.asyncDispose](),
    };
  }
  const store = await LogStore.open(cfg.db_file, logStoreOptions(cfg));
  let sink: LogStoreSink;
  try {
    sink = getLogStoreSink(store, logStoreSinkOptions(cfg));
  } catch (e) {
    store.close();
    throw e;
  }
  let logging: AsyncDisposable;
  try {
    logging = await setupLogging(config.logging, { ...options, extraSinks: { store: sink } });
  } catch (e) {
    await sink[Symbol.asyncDispose]().catch(() => {});
    store.close();
    throw e;
  }
  let disposed: Promise<void> | undefined;
  return {
    store,
    sink,
    [Symbol.asyncDispose]() {
      disposed ??= (async () => {
        try {
          await logging[Symbol.asyncDispose]();
          await sink[Symbol.asyncDispose]();
        } finally {
          store.close();
        }
      })();
      return disposed;
    },
  };
}
