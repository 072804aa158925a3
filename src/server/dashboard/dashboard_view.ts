import type { PluginHost } from "../../host/mod.ts";
import type { LogEntry } from "../../logs/mod.ts";
import { pluginViews } from "../plugin_view.ts";

/** One plugin row of the dashboard: what the page shows, nothing more (no folder, no env). */
export interface DashboardPlugin {
  readonly name: string;
  readonly version: string;
  readonly state: string;
  readonly health: string;
  readonly breaker: string;
  readonly restarts: number;
  readonly pids: readonly number[];
  readonly instances: number;
  readonly methods: readonly string[];
  /** The grants summary (`read: ./data; env: TZ`): env names only, never values. */
  readonly grants: string;
  readonly error: string | null;
  readonly calls: number;
  readonly failed: number;
}

/** One log record as the page shows it: properties are left out (they may hold anything). */
export interface DashboardLog {
  readonly seq: number;
  readonly ts: number;
  readonly level: string;
  readonly plugin: string | null;
  readonly category: string;
  readonly message: string;
}

/** The rows of the dashboard's plugin table, from the same views as `GET /v1/plugins`. */
export function dashboardPlugins(
  host: Pick<PluginHost, "plugins" | "policy" | "metrics">,
): DashboardPlugin[] {
  return pluginViews(host).map((v) => ({
    name: v.name,
    version: v.version,
    state: v.state,
    health: v.health,
    breaker: v.breaker,
    restarts: v.restarts,
    pids: v.instances.flatMap((i) => i.pid === null ? [] : [i.pid]),
    instances: v.instances.length,
    methods: v.methods,
    grants: v.grants,
    error: v.error,
    calls: v.calls.total,
    failed: v.calls.failed,
  }));
}

/** A stored log record for the page. */
export function dashboardLog(e: LogEntry): DashboardLog {
  return {
    seq: e.seq,
    ts: e.ts,
    level: e.level,
    plugin: e.plugin,
    category: e.category,
    message: e.message,
  };
}
