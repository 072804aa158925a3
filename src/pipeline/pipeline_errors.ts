import { PluginError } from "../runtime/mod.ts";

/** The plugin's rate limit is exhausted (`RATE_LIMITED`); `retryAfterMs` says when to try again. */
export class RateLimitedError extends PluginError {
  /** When a token is next available, in ms. */
  readonly retryAfterMs: number;

  /** @param retryAfterMs until the next token */
  constructor(plugin: string, method: string, retryAfterMs: number, rps: number) {
    super(
      "RATE_LIMITED",
      `plugin ${plugin}: ${method} refused, the rate limit (${rps}/s) is exhausted; ` +
        `retry after ${Math.ceil(retryAfterMs)} ms or raise rate_limit.rps/burst`,
      { plugin, method, retryAfterMs: Math.ceil(retryAfterMs) },
    );
    this.retryAfterMs = Math.ceil(retryAfterMs);
  }
}

/** The plugin's circuit breaker is open (`CIRCUIT_OPEN`): calls fail fast until it recovers. */
export class CircuitOpenError extends PluginError {
  /** @param retryAfterMs roughly when the breaker half-opens again */
  constructor(
    plugin: string,
    method: string,
    retryAfterMs: number,
    options: { cause?: unknown } = {},
  ) {
    super(
      "CIRCUIT_OPEN",
      `plugin ${plugin}: ${method} not attempted, the circuit breaker is open after repeated ` +
        `failures; it tries again in about ${Math.max(0, Math.ceil(retryAfterMs))} ms ` +
        "(see plugsconc logs for the failures)",
      { plugin, method, retryAfterMs: Math.max(0, Math.ceil(retryAfterMs)) },
      options,
    );
  }
}

/** Every instance's in-flight limit and queue are full (`BULKHEAD_FULL`). */
export class BulkheadFullError extends PluginError {
  constructor(plugin: string, method: string, maxInFlight: number, queue: number) {
    super(
      "BULKHEAD_FULL",
      `plugin ${plugin}: ${method} refused, ${maxInFlight} calls are in flight and ${queue} ` +
        "queued on the chosen instance; retry later, or raise bulkhead.max_in_flight/queue or instances",
      { plugin, method, maxInFlight, queue },
    );
  }
}
