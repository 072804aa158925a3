/**
 * The gateway's dashboard: a status page at `GET /` (embedded HTML, JS, CSS and uPlot; no
 * build step, no CDN) and its Server-Sent Events at `GET /dashboard/events`.
 *
 * @module
 */
export { type Asset, assetResponse, ASSETS } from "./assets.ts";
export {
  type DashboardLog,
  dashboardLog,
  type DashboardPlugin,
  dashboardPlugins,
} from "./dashboard_view.ts";
export {
  EventStreams,
  type EventStreamsOptions,
  MAX_EVENT_STREAMS,
  type StreamHost,
} from "./event_stream.ts";
export { MetricHistory, type MetricHistoryOptions, type MetricSample } from "./metric_history.ts";
