/**
 * The plugin SDK: what plugin code imports as `plugsconc/sdk`.
 *
 * @example
 * ```ts
 * import { serve } from "plugsconc/sdk";
 *
 * serve({
 *   methods: {
 *     async slow(_params, { signal, log }) {
 *       log.info("working");
 *       await new Promise((r, j) => {
 *         const t = setTimeout(r, 1000);
 *         signal.addEventListener("abort", () => { clearTimeout(t); j(signal.reason); });
 *       });
 *       return "done";
 *     },
 *   },
 *   health: () => ({ status: "healthy" }),
 * });
 * ```
 *
 * @module
 */
export { DEFAULT_HANDSHAKE, PROTOCOL_VERSION } from "./handshake.ts";
export {
  CHILD_SIGNALS,
  type ChildInfo,
  type ChildSignal,
  type HostClient,
  HostServiceError,
  type PluginsClient,
  type ProcessClient,
  type ProcessResult,
} from "./host_client.ts";
export {
  type HandlerContext,
  type HealthReport,
  type MethodHandler,
  type PluginLogger,
  type PluginLogLevel,
  type Progress,
  serve,
  type ServeOptions,
} from "./serve.ts";
