/**
 * In-process metrics: counters, gauges and histograms with labels, a JSON snapshot and the
 * Prometheus text format.
 *
 * @module
 */
export {
  Counter,
  Gauge,
  Histogram,
  type LabelValues,
  LATENCY_BUCKETS,
  type MetricSnapshot,
  MetricsRegistry,
  type SeriesSnapshot,
} from "./registry.ts";
