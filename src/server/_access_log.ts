import { getLogger } from "@logtape/logtape";
import type { Route } from "./_routes.ts";
import { CLIENT_CLOSED_REQUEST } from "./error_status.ts";

const log = getLogger(["plugsconc", "http"]);

/**
 * One record per request, inside the request's context (so it carries `requestId`): debug for
 * answers that are not the server's fault, warning for plugin failures (5xx), error for our
 * own bugs.
 */
export function accessLog(
  request: Request,
  route: Route,
  status: number,
  seconds: number,
  failure: { code: string; message: string } | undefined,
  failed: unknown,
): void {
  const level = failure?.code === "INTERNAL"
    ? "error"
    : status >= 500 && status !== CLIENT_CLOSED_REQUEST
    ? "warning"
    : "debug";
  // Most requests are debug records nobody keeps: build nothing for them.
  if (!log.isEnabledFor(level)) return;
  const fields: Record<string, unknown> = {
    httpMethod: request.method,
    route: route.label,
    ...(route.plugin === undefined ? {} : { plugin: route.plugin }),
    ...(route.method === undefined ? {} : { method: route.method }),
    status,
    ms: Math.round(seconds * 1e5) / 100,
    ...(failure === undefined ? {} : { code: failure.code, error: failure.message }),
  };
  const message = "{httpMethod} {route} {status} in {ms} ms";
  if (level === "error") {
    fields.cause = failed instanceof Error ? (failed.stack ?? failed.message) : String(failed);
    log.error(message + ": {cause}", fields);
  } else if (level === "warning") {
    log.warning(message + ": {error}", fields);
  } else {
    log.debug(message, fields);
  }
}
