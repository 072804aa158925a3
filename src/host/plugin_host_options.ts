import type { LogStore } from "../logs/mod.ts";

/** Options for {@link PluginHost.start}. */
export interface PluginHostOptions {
  /** A config file to load. Default: `config.yaml` if neither this nor `config` is given. */
  configPath?: string;
  /** A config object (as in `config.yaml`) or an already loaded config. */
  config?: unknown;
  /** Folder that relative paths in `config` resolve against. Default: the working directory. */
  baseDir?: string;
  /** Start only these plugins (and what they depend on). Default: every enabled plugin. */
  only?: readonly string[];
  /**
   * Watch the plugins folder and reload changed plugins (`watcher.enabled` and
   * `watcher.reload`). Default: as configured, and off when `only` is given.
   */
  watch?: boolean;
  /**
   * The log store the process writes to (see `setupHostLogging`), exposed as `host.logs`.
   * Default: the host opens `logging.store.db_file` itself when `logging.store.enabled`
   * (for queries; records reach it only where logging is set up with the store's sink).
   */
  logStore?: LogStore;
  /** Who the audit trail names as the writer of this host's events. Default: `host`. */
  auditActor?: string;
}
