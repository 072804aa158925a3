import type { PlugsconcError } from "../errors/mod.ts";
import type { PluginDescriptor } from "../manifest/mod.ts";
import type { CallPipeline, InstanceSet, PluginPolicy } from "../pipeline/mod.ts";
import type { PluginSupervisor } from "../runtime/mod.ts";
import type { CompiledSandbox } from "../sandbox/mod.ts";
import type { HeldReload } from "./plugin_info.ts";

/** A started plugin version: its sandbox, processes and call pipeline. */
export interface Running {
  readonly compiled: CompiledSandbox;
  /** What callers may call: the methods announced at start, and the manifest's. */
  readonly methods: ReadonlySet<string>;
  readonly supervisors: readonly PluginSupervisor[];
  readonly instances: InstanceSet;
  readonly pipeline: CallPipeline;
}

/** One plugin the host manages: running, or failed with `error` (or not started yet). */
export interface Entry extends Partial<Running> {
  readonly plugin: PluginDescriptor;
  readonly policy: PluginPolicy;
  error?: PlugsconcError;
  /** The reload of the version on disk held for widening; a new entry starts without one. */
  held?: HeldReload;
}
