import type { HealthStatus } from "../pipeline/mod.ts";
import type { PluginState } from "../runtime/mod.ts";

/** What `plugins()` reports for each plugin. */
export interface PluginInfo {
  readonly name: string;
  readonly version: string;
  readonly state: PluginState;
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
