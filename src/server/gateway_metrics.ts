import type { LogStoreSinkStats } from "../logs/mod.ts";
import type { Counter, MetricsRegistry } from "../metrics/mod.ts";

/** The routes, as the `route` label spells them (`other`: no route matched). */
export type RouteLabel =
  | "/v1/plugins/{name}/{method}"
  | "/v1/plugins/{name}"
  | "/v1/plugins"
  | "/healthz"
  | "/metrics"
  | "/"
  | "/dashboard/{asset}"
  | "/dashboard/events"
  | "other";

/**
 * The gateway's metrics, kept in the host's registry so `/metrics` is one exposition:
 * `plugsconc_http_requests_total{route,status}`, `plugsconc_http_request_duration_seconds{route}`
 * and `plugsconc_http_requests_in_flight`; and, when given the log store's sink, the store's
 * queue depth, written/dropped/lost records and degraded state.
 *
 * `route` is the route's template, never the raw path, so a client cannot grow the label set;
 * `status` is the HTTP status (`code` already means an error code in the pipeline's metrics).
 */
export class GatewayMetrics {
  readonly #requests: Counter;
  readonly #handles = new Map<string, { inc(): void }>();
  readonly #durations = new Map<RouteLabel, { observe(v: number): void }>();
  readonly #registry: MetricsRegistry;
  readonly #inFlight: { inc(): void; dec(): void };
  readonly #sync: (() => void) | undefined;

  /**
   * @param registry where the series go (the host's)
   * @param logSink the log store's sink, whose counters are published at each collection
   */
  constructor(registry: MetricsRegistry, logSink?: { readonly stats: LogStoreSinkStats }) {
    this.#registry = registry;
    this.#requests = registry.counter(
      "plugsconc_http_requests_total",
      "HTTP requests answered by the gateway, by route and status.",
      ["route", "status"],
    );
    this.#inFlight = registry.gauge(
      "plugsconc_http_requests_in_flight",
      "HTTP requests being handled.",
    ).labels();
    if (logSink !== undefined) this.#sync = logStoreMetrics(registry, logSink);
  }

  /** Counts one request in flight; call the returned function when it is answered. */
  start(): () => void {
    this.#inFlight.inc();
    return () => this.#inFlight.dec();
  }

  /** Records an answered request. */
  observe(route: RouteLabel, status: number, seconds: number): void {
    const key = `${route} ${status}`;
    let h = this.#handles.get(key);
    if (h === undefined) {
      h = this.#requests.labels(route, String(status));
      this.#handles.set(key, h);
    }
    h.inc();
    let d = this.#durations.get(route);
    if (d === undefined) {
      d = this.#registry.histogram(
        "plugsconc_http_request_duration_seconds",
        "Time from request to response headers, by route, in seconds.",
        ["route"],
      ).labels(route);
      this.#durations.set(route, d);
    }
    d.observe(seconds);
  }

  /** The Prometheus text of every metric in the registry, log store counters refreshed. */
  prometheus(): string {
    this.#sync?.();
    return this.#registry.prometheus();
  }
}

/**
 * Registers the log store's metrics; returns the function that brings its counters up to
 * the sink's (they only go up, so each collection adds the difference).
 */
function logStoreMetrics(
  registry: MetricsRegistry,
  sink: { readonly stats: LogStoreSinkStats },
): () => void {
  registry.gauge(
    "plugsconc_log_queue_depth",
    "Log records waiting for the SQLite store (queued and being written).",
    [],
    (set) => set([], sink.stats.queued + sink.stats.inFlight),
  );
  registry.gauge(
    "plugsconc_log_store_degraded",
    "1 while writes to the log store fail and are retried.",
    [],
    (set) => set([], sink.stats.degraded === null ? 0 : 1),
  );
  const counters = [
    ["plugsconc_log_records_written_total", "Log records committed to the store.", "written"],
    ["plugsconc_log_records_dropped_total", "Log records dropped: the queue was full.", "dropped"],
    ["plugsconc_log_records_lost_total", "Log records in batches SQLite refused.", "lost"],
  ] as const;
  const series = counters.map(([name, help, key]) => ({
    counter: registry.counter(name, help).labels(),
    key,
  }));
  return () => {
    const stats = sink.stats;
    for (const { counter, key } of series) {
      const delta = stats[key] - counter.get();
      if (delta > 0) counter.inc(delta);
    }
  };
}
