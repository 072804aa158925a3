import type { CallPipeline } from "../pipeline/mod.ts";
import { PluginNotFoundError, PluginUnavailableError } from "../runtime/mod.ts";
import type { Entry } from "./_entry.ts";
import { checkParams } from "./typed_methods.ts";

/**
 * The pipeline a call of `name.method` goes through, after the checks every call and stream
 * makes first: an unknown plugin or method (checked here, not by the plugin: an unknown name
 * never reaches the pipeline and its metrics, whose series per method would otherwise grow
 * with every name a client tries), the protocol's own methods (`$/health`, `host/...` are the
 * host's, not callers'), a plugin not running, and params that fail the method's schema (so
 * the plugin never sees them).
 *
 * @throws {PluginNotFoundError | PluginUnavailableError | InvalidParamsError}
 */
export function callTarget(
  entries: ReadonlyMap<string, Entry>,
  name: string,
  method: string,
  params: unknown,
): { entry: Entry; pipeline: CallPipeline } {
  const entry = entries.get(name);
  if (entry === undefined) throw new PluginNotFoundError(name, undefined, [...entries.keys()]);
  if (method.startsWith("$/") || method.startsWith("host/")) {
    throw new PluginNotFoundError(name, method, [...(entry.methods ?? [])].sort());
  }
  const pipeline = entry.pipeline;
  if (pipeline === undefined || entry.error) {
    throw new PluginUnavailableError(name, "failed", entry.error?.message ?? "it was not started", {
      method,
      cause: entry.error,
    });
  }
  if (entry.methods !== undefined && !entry.methods.has(method)) {
    throw new PluginNotFoundError(name, method, [...entry.methods].sort());
  }
  checkParams(entry.plugin, method, params);
  return { entry, pipeline };
}
