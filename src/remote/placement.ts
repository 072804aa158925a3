import type { Config } from "../config/mod.ts";

/** Where a plugin runs: `local`, `remote` (NATS workers), or `overflow` (local, then NATS). */
export type Placement = "local" | "remote" | "overflow";

/** Where a plugin runs (`plugins.<name>.placement`): `local` unless the config says otherwise. */
export function placementOf(config: Config, plugin: string): Placement {
  return config.plugins[plugin]?.placement ?? "local";
}
