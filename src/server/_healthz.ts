import type { HostHealth } from "../host/mod.ts";
import { jsonResponse } from "./_json_response.ts";

/**
 * The answer of `GET /healthz`: 200 when the host and every enabled plugin is healthy and the
 * gateway is not `closing`, else 503. Error messages can name files, so plugins' errors are
 * only in it when `detailed` (an authenticated caller, or any without a token).
 */
export function healthzResponse(
  health: HostHealth,
  closing: boolean,
  detailed: boolean,
  requestId: string,
): Response {
  const ok = health.status === "healthy" && !closing;
  const plugins: Record<string, { status: string; instances: number; error?: string }> = {};
  for (const [name, p] of Object.entries(health.plugins)) {
    plugins[name] = {
      status: p.status,
      instances: p.instances.length,
      ...(detailed && p.error !== undefined ? { error: p.error } : {}),
    };
  }
  return jsonResponse(ok ? 200 : 503, {
    status: closing ? "closing" : health.status,
    not_healthy: Object.entries(health.plugins).filter(([, p]) => p.status !== "healthy").map((
      [name],
    ) => name),
    plugins,
  }, requestId);
}
