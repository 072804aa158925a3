import type { MetricsRegistry } from "../metrics/mod.ts";
import type { WorkerPool } from "../pool/mod.ts";
import type { Entry } from "./_entry.ts";
import { restartsOf } from "./_entry_info.ts";

/**
 * Registers the gauges of the runtime (restarts, instances up and configured, health) and of
 * the pool (queue depth, jobs by outcome), read from `entries` and `pool` at each scrape.
 */
export function registerRuntimeMetrics(
  m: MetricsRegistry,
  source: { readonly entries: ReadonlyMap<string, Entry>; readonly pool: WorkerPool | undefined },
): void {
  const { entries, pool } = source;
  const each = (f: (e: Entry) => void) => () => entries.forEach(f);
  m.gauge(
    "plugsconc_plugin_restarts",
    "Restarts after a crash, summed over instances.",
    [
      "plugin",
    ],
    (set) => each((e) => set([e.plugin.name], restartsOf(e)))(),
  );
  m.gauge(
    "plugsconc_plugin_up",
    "Instances ready to serve (state ready and healthy or degraded).",
    ["plugin"],
    (set) =>
      each((e) =>
        set(
          [e.plugin.name],
          (e.instances?.instances ?? []).filter((i) =>
            i.health === "healthy" || i.health === "degraded"
          ).length,
        )
      )(),
  );
  m.gauge(
    "plugsconc_plugin_instances",
    "Instances configured.",
    ["plugin"],
    (set) => each((e) => set([e.plugin.name], e.supervisors?.length ?? 0))(),
  );
  m.gauge(
    "plugsconc_plugin_health",
    "Plugin health: 1 for the current status.",
    ["plugin", "status"],
    (set) =>
      each((e) => {
        const status = e.instances?.health ?? "offline";
        for (const s of ["healthy", "degraded", "unhealthy", "offline"]) {
          set([e.plugin.name, s], s === status ? 1 : 0);
        }
      })(),
  );
  m.gauge("plugsconc_pool_queue_depth", "Jobs waiting in the worker pool's queue.", [], (set) => {
    if (pool) set([], pool.metrics().queueDepth);
  });
  m.gauge(
    "plugsconc_pool_jobs",
    "Worker pool jobs by outcome (since start).",
    ["outcome"],
    (set) => {
      if (!pool) return;
      const p = pool.metrics();
      for (
        const k of [
          "submitted",
          "rejected",
          "succeeded",
          "failed",
          "retried",
          "cancelled",
        ] as const
      ) {
        set([k], p[k]);
      }
    },
  );
}
