import type { HealthStatus } from "../pipeline/mod.ts";
import { describeFailure, type PluginState } from "../runtime/mod.ts";
import type { Entry } from "./_entry.ts";
import type { HostHealth } from "./host_health.ts";
import type { InstanceInfo, PluginInfo, PluginInfoState } from "./plugin_info.ts";
import { summarizeGrants } from "./summarize_grants.ts";

/** Restarts after a crash, summed over the plugin's instances. */
export function restartsOf(e: Entry): number {
  return (e.supervisors ?? []).reduce((n, s) => n + s.restarts, 0);
}

/** A plugin's health across its instances: `offline` when it is failed or none runs. */
function healthOf(e: Entry): HealthStatus {
  return e.error ? "offline" : e.instances?.health ?? "offline";
}

/**
 * A plugin's state as the best of its instances: `ready` when all are, `degraded` when some
 * are (calls still go through), else the first one's (all starting, crashed, failed...).
 */
function stateOf(e: Entry, remote: { state: PluginState } | undefined): PluginInfoState {
  if (e.error) return "failed";
  const states = (e.supervisors ?? []).map((s) => s.state);
  const ready = states.filter((s) => s === "ready").length;
  if (ready > 0 && ready < states.length) return "degraded";
  return states[0] ?? remote?.state ?? "stopped";
}

/** What `plugins()` reports for one entry. */
export function pluginInfo(e: Entry): PluginInfo {
  const first = e.supervisors?.[0];
  // The pid and methods come from an instance that serves, when one does.
  const serving = e.supervisors?.find((s) => s.state === "ready") ?? first;
  // A remote plugin has no supervisor: its endpoint stands for its workers.
  const remote = e.supervisors?.length === 0 ? e.instances?.instances[0]?.endpoint : undefined;
  const failed = e.supervisors?.find((x) => x.state === "failed");
  return {
    name: e.plugin.name,
    version: e.plugin.manifest.plugin.version,
    state: stateOf(e, remote),
    pid: serving?.state === "ready" ? serving.process?.pid : undefined,
    restarts: restartsOf(e),
    dir: e.plugin.dir,
    methods: serving?.process?.ready.methods ?? (remote ? [...(e.methods ?? [])].sort() : []),
    grants: e.compiled ? summarizeGrants(e.compiled) : "",
    error: e.error?.message ??
      (failed
        ? `${failed.restarts} restarts, then ${describeFailure(failed.lastError)}`
        : undefined),
    health: healthOf(e),
    instances: instanceInfo(e),
    breaker: e.pipeline?.breakerState ?? "closed",
    placement: remote
      ? "remote"
      : "overflow" in (e.instances?.instances[0]?.endpoint ?? {})
      ? "overflow"
      : "local",
    ...(e.held ? { held: e.held } : {}),
  };
}

/** What `health()` reports for these entries: each one's health and the worst of them. */
export function hostHealth(entries: Iterable<Entry>): HostHealth {
  const plugins: Record<
    string,
    { status: HealthStatus; instances: InstanceInfo[]; error?: string }
  > = {};
  const rank: Record<HealthStatus, number> = {
    healthy: 0,
    degraded: 1,
    unhealthy: 2,
    offline: 3,
  };
  let status: HealthStatus = "healthy";
  for (const e of entries) {
    const s = healthOf(e);
    plugins[e.plugin.name] = {
      status: s,
      instances: instanceInfo(e),
      ...(e.error ? { error: e.error.message } : {}),
    };
    if (rank[s] > rank[status]) status = s;
  }
  return { status, plugins };
}

function instanceInfo(e: Entry): InstanceInfo[] {
  return (e.instances?.instances ?? []).map((i) => ({
    index: i.index,
    state: i.endpoint.state,
    pid: i.endpoint.state === "ready" && !("workers" in i.endpoint)
      ? i.endpoint.incarnation
      : undefined,
    restarts: i.endpoint.restarts,
    health: i.health,
    message: i.healthMessage,
    inFlight: i.inFlight,
    ...("workers" in i.endpoint
      ? { workers: (i.endpoint.workers as { id: string; version: string }[]).map(workerView) }
      : "overflow" in i.endpoint
      ? {
        workers: (i.endpoint.overflow as { workers: { id: string; version: string }[] }).workers
          .map(workerView),
      }
      : {}),
  }));
}

function workerView(w: { id: string; version: string }): { id: string; version: string } {
  return { id: w.id, version: w.version };
}
