import { getLogger } from "@logtape/logtape";
import type { AuditEvent, AuditTrail } from "./audit_trail.ts";

const log = getLogger(["plugsconc", "audit"]);
const trails = new Set<AuditTrail>();

/** Events per kind and plugin per window; more are counted and reported in one event. */
const WINDOW_EVENTS = 50;
const WINDOW_MS = 10_000;
const windows = new Map<string, { start: number; n: number; suppressed: number }>();

/**
 * Makes `trail` receive every {@linkcode auditEvent} of this process until the returned
 * function is called. The host attaches its trail while it runs, so the layers that see
 * security events (process service, reloader, gateway) report them with one call and need no
 * handle threaded through.
 */
export function attachAuditTrail(trail: AuditTrail): () => void {
  trails.add(trail);
  return () => void trails.delete(trail);
}

/**
 * Appends a security event to every attached trail (none attached: nothing happens). Never
 * throws: a trail that cannot be written is logged, and the operation it audits goes on.
 */
export function auditEvent(event: AuditEvent): void {
  if (trails.size === 0) return;
  // Synchronous writes on behalf of what a plugin or a client does (execs, bad tokens) are
  // rate-limited: a flood costs a counter, not a database write each.
  const key = `${event.kind}\0${event.plugin ?? ""}`;
  const now = Date.now();
  let w = windows.get(key);
  if (w === undefined || now - w.start >= WINDOW_MS) {
    if (w !== undefined && w.suppressed > 0) {
      append({
        kind: "audit.suppressed",
        plugin: event.plugin,
        detail: { kind: event.kind, count: w.suppressed, windowMs: WINDOW_MS },
      });
    }
    w = { start: now, n: 0, suppressed: 0 };
    windows.set(key, w);
  }
  if (w.n >= WINDOW_EVENTS) {
    w.suppressed++;
    return;
  }
  w.n++;
  append(event);
}

function append(event: AuditEvent): void {
  for (const t of trails) {
    try {
      t.append(event);
    } catch (error) {
      log.warning("audit trail {path}: cannot append {kind}: {error}", {
        path: t.path,
        kind: event.kind,
        error,
      });
    }
  }
}

/** The attached trails (the first is where usage totals go). */
export function attachedAuditTrails(): readonly AuditTrail[] {
  return [...trails];
}
