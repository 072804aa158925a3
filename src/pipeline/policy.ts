import type { Config, PluginDefaults } from "../config/mod.ts";
import type { PluginDescriptor } from "../manifest/mod.ts";

/** Everything the call pipeline of one plugin does, after every override. */
export interface PluginPolicy {
  readonly plugin: string;
  /** Deadline of a call without `timeoutMs`, per method (`*`: the rest). */
  readonly timeout_ms: Readonly<Record<string, number>>;
  /** Methods retried on failure (manifest `methods.<m>.idempotent`). */
  readonly idempotent: readonly string[];
  readonly retry: PluginDefaults["retry"];
  readonly circuit_breaker: PluginDefaults["circuit_breaker"];
  readonly rate_limit: PluginDefaults["rate_limit"];
  readonly bulkhead: PluginDefaults["bulkhead"];
  readonly health: PluginDefaults["health"];
  readonly instances: number;
  readonly balancer: PluginDefaults["balancer"];
}

/**
 * The effective policy of a plugin: `defaults` in the config, overridden by
 * `plugins.<name>` in the config, with the manifest supplying what only the plugin knows
 * (`methods.<m>.idempotent`, and `methods.<m>.timeout_ms` / `resources.timeout_ms` where the
 * operator set no `plugins.<name>.timeout_ms`).
 *
 * @example
 * ```ts
 * const policy = effectivePolicy(config, plugin);
 * policy.timeout_ms["*"]; // e.g. 5000
 * ```
 */
export function effectivePolicy(
  config: Config,
  plugin: Pick<PluginDescriptor, "name" | "manifest">,
): PluginPolicy {
  const d = config.defaults;
  const o = config.plugins[plugin.name];
  const m = plugin.manifest;
  const base = o?.timeout_ms ?? m.resources.timeout_ms ?? d.timeout_ms;
  const timeouts: Record<string, number> = { "*": base };
  for (const [name, spec] of Object.entries(m.methods)) {
    if (o?.timeout_ms === undefined && spec.timeout_ms !== undefined) {
      timeouts[name] = spec.timeout_ms;
    }
  }
  return {
    plugin: plugin.name,
    timeout_ms: timeouts,
    idempotent: Object.entries(m.methods).filter(([, s]) => s.idempotent).map(([n]) => n).sort(),
    retry: { ...d.retry, ...o?.retry },
    circuit_breaker: { ...d.circuit_breaker, ...o?.circuit_breaker },
    rate_limit: { ...d.rate_limit, ...o?.rate_limit },
    bulkhead: { ...d.bulkhead, ...o?.bulkhead },
    health: { ...d.health, ...o?.health },
    instances: o?.instances ?? d.instances,
    balancer: o?.balancer ?? d.balancer,
  };
}

/** The deadline of `method` under `policy` (ms). */
export function timeoutOf(policy: PluginPolicy, method: string): number {
  return policy.timeout_ms[method] ?? policy.timeout_ms["*"]!;
}

/** Policy lines for `plugins inspect`: one `key: value` per setting. */
export function explainPolicy(policy: PluginPolicy): string {
  const r = policy.retry;
  const b = policy.circuit_breaker;
  const rl = policy.rate_limit;
  const timeouts = Object.entries(policy.timeout_ms).map(([k, v]) =>
    k === "*" ? `${v} ms` : `${k} ${v} ms`
  );
  const lines = [
    `timeout:         ${timeouts.join(", ")}`,
    `retry:           ${
      policy.idempotent.length === 0
        ? "none (no method is idempotent)"
        : `${r.max_attempts} attempts for ${
          policy.idempotent.join(", ")
        }; backoff ${r.initial_delay_ms} ms x${r.multiplier} up to ${r.max_delay_ms} ms, jittered`
    }`,
    `circuit breaker: ${
      !b.enabled
        ? "off"
        : b.mode === "consecutive"
        ? `opens after ${b.failure_threshold} consecutive failures`
        : `opens at ${
          b.failure_ratio * 100
        }% failures over ${b.window_ms} ms (at least ${b.min_requests} calls)`
    }${
      b.enabled
        ? `; half-opens after ${b.recovery_ms} ms; closes after ${b.success_threshold} successes`
        : ""
    }`,
    `rate limit:      ${rl.rps > 0 ? `${rl.rps}/s, burst ${rl.burst}` : "none"}`,
    `bulkhead:        ${policy.bulkhead.max_in_flight} in flight per instance, queue ${policy.bulkhead.queue}`,
    `instances:       ${policy.instances} (${policy.balancer})`,
    `health:          $/health every ${policy.health.interval_ms} ms, timeout ${policy.health.timeout_ms} ms; restarted after ${policy.health.failure_limit} failures`,
  ];
  return lines.join("\n") + "\n";
}
