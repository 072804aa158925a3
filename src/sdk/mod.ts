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
  type HandlerContext,
  type HealthReport,
  type HostClient,
  type MethodHandler,
  type PluginLogger,
  type PluginLogLevel,
  serve,
  type ServeOptions,
} from "./serve.ts";
