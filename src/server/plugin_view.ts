import type { PermissionReport } from "../audit/mod.ts";
import type { PluginHost, PluginInfo } from "../host/mod.ts";
import type { MetricSnapshot } from "../metrics/mod.ts";
import type { PluginPolicy } from "../pipeline/mod.ts";

/** Call counters of one method (or of a whole plugin), from the pipeline's metrics. */
export interface CallCounters {
  /** Calls made. */
  readonly total: number;
  /** Calls that succeeded. */
  readonly succeeded: number;
  /** Calls that failed, whatever the reason. */
  readonly failed: number;
  /** Calls in flight now. */
  readonly in_flight: number;
}

/** A plugin's call counters in total, per method, and its failures per error code. */
export interface PluginCalls extends CallCounters {
  readonly by_method: Readonly<Record<string, CallCounters>>;
  readonly failures_by_code: Readonly<Record<string, number>>;
}

/** What `GET /v1/plugins` and `GET /v1/plugins/{name}` report for a plugin. */
export interface PluginView {
  readonly name: string;
  readonly version: string;
  /** `ready` when all its instances are, `degraded` when only some are (see `instances`). */
  readonly state: string;
  readonly health: string;
  readonly breaker: string;
  readonly restarts: number;
  readonly methods: readonly string[];
  /** One-line grants summary, e.g. `read: ./data; net: api.example.com:443`. */
  readonly grants: string;
  /** Why it is not running, when it is failed. */
  readonly error: string | null;
  readonly instances: readonly {
    readonly index: number;
    readonly state: string;
    readonly pid: number | null;
    readonly restarts: number;
    readonly health: string;
    readonly message: string | null;
    readonly in_flight: number;
    /** A remote instance's workers (NATS service discovery). */
    readonly workers?: readonly { readonly id: string; readonly version: string }[];
  }[];
  /** `local`, or `remote` (served by `plugsconc serve` workers over NATS). */
  readonly placement?: string;
  /** The effective call policy (config defaults, overrides, manifest). */
  readonly policy: PluginPolicy | null;
  readonly calls: PluginCalls;
  /**
   * While a reload is held under `security.policy: strict` (the manifest on disk widens the
   * running version's grants): since when (ISO 8601) and the widening. Absent otherwise.
   */
  readonly held?: {
    readonly since: string;
    readonly diff: string;
    readonly widened: readonly { readonly kind: string; readonly grant: string }[];
  };
  /** Only for `GET /v1/plugins/{name}`: declared grants used or not, denied checks. */
  readonly permissions?: PermissionReport | null;
}

const CALL_METRICS = new Set([
  "plugsconc_calls_total",
  "plugsconc_call_successes_total",
  "plugsconc_call_failures_total",
  "plugsconc_calls_in_flight",
]);

/**
 * The views of the host's plugins (all, or only `name`), with call counters read from
 * `host.metrics` in one snapshot. The plugin folder is left out: a path on the host is none
 * of an HTTP client's business.
 *
 * @example
 * ```ts
 * const [cat] = pluginViews(host, "cat");
 * cat?.calls.total;
 * ```
 */
export function pluginViews(
  host:
    & Pick<PluginHost, "plugins" | "policy" | "metrics">
    & Partial<Pick<PluginHost, "permissions">>,
  name?: string,
): PluginView[] {
  const infos = host.plugins().filter((p) => name === undefined || p.name === name);
  if (infos.length === 0) return [];
  const metrics = host.metrics.snapshot().filter((m) => CALL_METRICS.has(m.name));
  const views = infos.map((info) =>
    viewOf(info, host.policy(info.name), callsOf(metrics, info.name))
  );
  // One plugin asked for: its permission audit too (a database read, so not in the list).
  if (name !== undefined && host.permissions) {
    return views.map((v) => ({ ...v, permissions: host.permissions!(v.name) ?? null }));
  }
  return views;
}

function viewOf(info: PluginInfo, policy: PluginPolicy | undefined, calls: PluginCalls) {
  return {
    name: info.name,
    version: info.version,
    state: info.state,
    health: info.health,
    breaker: info.breaker,
    restarts: info.restarts,
    methods: info.methods,
    grants: info.grants,
    error: info.error ?? null,
    instances: info.instances.map((i) => ({
      index: i.index,
      state: i.state,
      pid: i.pid ?? null,
      restarts: i.restarts,
      health: i.health,
      message: i.message ?? null,
      in_flight: i.inFlight,
      ...(i.workers ? { workers: i.workers } : {}),
    })),
    placement: info.placement ?? "local",
    policy: policy ?? null,
    calls,
    ...(info.held
      ? {
        held: {
          since: info.held.since.toISOString(),
          diff: info.held.diff,
          widened: info.held.widened.map((w) => ({ kind: w.kind, grant: w.grant })),
        },
      }
      : {}),
  };
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function callsOf(metrics: readonly MetricSnapshot[], plugin: string): PluginCalls {
  const byMethod: Record<string, Mutable<CallCounters>> = {};
  const failuresByCode: Record<string, number> = {};
  const method = (m: string) => byMethod[m] ??= { total: 0, succeeded: 0, failed: 0, in_flight: 0 };
  for (const metric of metrics) {
    for (const s of metric.series) {
      if (s.labels.plugin !== plugin || s.labels.method === undefined) continue;
      const c = method(s.labels.method);
      switch (metric.name) {
        case "plugsconc_calls_total":
          c.total += s.value;
          break;
        case "plugsconc_call_successes_total":
          c.succeeded += s.value;
          break;
        case "plugsconc_calls_in_flight":
          c.in_flight += s.value;
          break;
        case "plugsconc_call_failures_total": {
          c.failed += s.value;
          const code = s.labels.code ?? "UNKNOWN";
          failuresByCode[code] = (failuresByCode[code] ?? 0) + s.value;
        }
      }
    }
  }
  const all = Object.values(byMethod);
  const sum = (k: keyof CallCounters) => all.reduce((n, c) => n + c[k], 0);
  return {
    total: sum("total"),
    succeeded: sum("succeeded"),
    failed: sum("failed"),
    in_flight: sum("in_flight"),
    by_method: byMethod,
    failures_by_code: failuresByCode,
  };
}
