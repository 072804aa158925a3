import type { HealthStatus } from "../pipeline/mod.ts";
import type { PluginState } from "../runtime/mod.ts";
import type { WidenedGrant } from "../sandbox/mod.ts";

/**
 * A plugin's state: its instances' states at best, `degraded` when some of its instances are
 * ready and others are not.
 */
export type PluginInfoState = PluginState | "degraded";

/**
 * A reload held under `security.policy: strict` because the manifest on disk widens the
 * running version's capabilities. The running version keeps serving; the hold ends when the
 * change is reverted (the reload then goes through) or the host restarts.
 */
export interface HeldReload {
  /** When the reload was first held. */
  readonly since: Date;
  /** The widening as one line, as logged: `+net api.example.com:443`, `renamed from cat`. */
  readonly diff: string;
  /** The grants the held version adds (env names only, never values). */
  readonly widened: readonly WidenedGrant[];
}

/** What `plugins()` reports for each plugin. */
export interface PluginInfo {
  readonly name: string;
  readonly version: string;
  /** `ready` when all its instances are, `degraded` when only some are, else the first's. */
  readonly state: PluginInfoState;
  /** The first ready instance's process. */
  readonly pid: number | undefined;
  readonly restarts: number;
  readonly dir: string;
  /** Methods the plugin announced (empty until it is ready). */
  readonly methods: readonly string[];
  /** One-line grants summary, e.g. `read: ./data; net: api.example.com:443`. */
  readonly grants: string;
  /** Why it is not running, when it is failed. */
  readonly error: string | undefined;
  /** Health across its instances (`offline` when none runs). */
  readonly health: HealthStatus;
  /** Each process: index, state, pid, health. */
  readonly instances: readonly InstanceInfo[];
  /** Circuit breaker state. */
  readonly breaker: "closed" | "open" | "half-open";
  /** `local`, `remote` (served by `plugsconc serve` workers over NATS), or `overflow`. */
  readonly placement?: "local" | "remote" | "overflow";
  /** The reload held because it widens capabilities, while it is held. */
  readonly held?: HeldReload;
}

/** One process of a plugin, as `plugins()` and `health()` report it. */
export interface InstanceInfo {
  readonly index: number;
  readonly state: PluginState;
  readonly pid: number | undefined;
  readonly restarts: number;
  readonly health: HealthStatus;
  readonly message: string | undefined;
  readonly inFlight: number;
  /** A remote instance's workers, as NATS service discovery last reported them. */
  readonly workers?: readonly { readonly id: string; readonly version: string }[];
}
