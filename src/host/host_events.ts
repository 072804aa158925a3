import type { PluginState } from "../runtime/mod.ts";

/** What {@linkcode PluginHost.on} reports, by event name. */
export interface PluginHostEvents {
  /** A plugin instance changed state (starting, ready, crashed, backoff, failed, ...). */
  state: {
    readonly plugin: string;
    readonly instance: number;
    readonly state: PluginState;
    readonly restarts: number;
  };
  /**
   * The outcome of a change batch of the watcher: a plugin `reloaded`, `started` (a new folder),
   * `stopped` (its folder removed, or a signed plugin's folder no longer matches its checksum:
   * it is failed, `reason` says why), `refused` (a bad change: the old version keeps serving) or
   * `held` (a widening under strict).
   */
  change: {
    readonly plugin: string | undefined;
    readonly dir: string;
    readonly outcome: "reloaded" | "started" | "stopped" | "refused" | "held";
    readonly paths: readonly string[];
    /** Why it was refused or held. */
    readonly reason?: string;
  };
}
