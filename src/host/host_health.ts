import type { HealthStatus } from "../pipeline/mod.ts";
import type { InstanceInfo } from "./plugin_info.ts";

/** What `health()` reports: the host's status and each enabled plugin's. */
export interface HostHealth {
  /** `healthy` when every plugin is; otherwise the worst plugin status. */
  readonly status: HealthStatus;
  readonly plugins: Readonly<
    Record<string, { status: HealthStatus; instances: readonly InstanceInfo[]; error?: string }>
  >;
}
