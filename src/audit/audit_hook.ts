import { getLogger } from "@logtape/logtape";
import type { AuditEvent, AuditTrail } from "./audit_trail.ts";

const log = getLogger(["plugsconc", "audit"]);
const trails = new Set<AuditTrail>();

/** Events per kind and plugin per window; more are counted and reported in one event. */
let windowEvents = 50;
let windowMs = 10_000;

interface Window {
  readonly kind: string;
  readonly plugin: string | undefined;
  readonly start: number;
  n: number;
  suppressed: number;
}

const windows = new Map<string, Window>();
/** Set while a window has suppressed events: fires when the first of them ends. */
let flushTimer: ReturnType<typeof setTimeout> | undefined;

/**
 * Makes `trail` receive every {@linkcode auditEvent} of this process until the returned
 * function is called. The host attaches its trail while it runs, so the layers that see
 * security events (process service, reloader, gateway) report them with one call and need no
 * handle threaded through. Detaching first writes the `audit.suppressed` counts still pending,
 * so a flood just before the host stops is not lost.
 */
export function attachAuditTrail(trail: AuditTrail): () => void {
  trails.add(trail);
  let attached = true;
  return () => {
    if (!attached) return;
    attached = false;
    flushSuppressed(true);
    trails.delete(trail);
    if (trails.size === 0) {
      windows.clear();
      schedule();
    }
  };
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
  if (w === undefined || now - w.start >= windowMs) {
    if (w !== undefined) report(w);
    w = { kind: event.kind, plugin: event.plugin, start: now, n: 0, suppressed: 0 };
    windows.set(key, w);
  }
  if (w.n >= windowEvents) {
    if (w.suppressed++ === 0 && flushTimer === undefined) schedule();
    return;
  }
  w.n++;
  append(event);
}

/** Writes a window's suppressed count, if any, and zeroes it. */
function report(w: Window): void {
  if (w.suppressed === 0) return;
  const count = w.suppressed;
  w.suppressed = 0;
  append({ kind: "audit.suppressed", plugin: w.plugin, detail: { kind: w.kind, count, windowMs } });
}

/** Reports the windows that ended (every window when `all`), forgets the ended ones. */
function flushSuppressed(all: boolean): void {
  const now = Date.now();
  for (const [key, w] of windows) {
    const ended = now - w.start >= windowMs;
    if (all || ended) report(w);
    if (ended) windows.delete(key);
  }
  schedule();
}

/** (Re)arms the timer for the first window with suppressed events; clears it when none. */
function schedule(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  let next = Infinity;
  for (const w of windows.values()) {
    if (w.suppressed > 0) next = Math.min(next, w.start + windowMs);
  }
  if (next === Infinity) return;
  flushTimer = setTimeout(() => {
    flushTimer = undefined;
    flushSuppressed(false);
  }, Math.max(0, next - Date.now()));
  // A pending count never keeps the process alive: detach (host stop) writes it.
  Deno.unrefTimer(flushTimer);
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

/**
 * Sets the rate limit of {@linkcode auditEvent} (for tests; the defaults are 50 events per
 * kind and plugin per 10 s) and returns the previous one.
 */
export function setAuditRateLimit(
  limit: { readonly events: number; readonly windowMs: number },
): { events: number; windowMs: number } {
  if (!(Number.isInteger(limit.events) && limit.events > 0)) {
    throw new RangeError(`events must be a positive integer, got ${limit.events}`);
  }
  if (!(limit.windowMs > 0)) throw new RangeError(`windowMs must be > 0, got ${limit.windowMs}`);
  const old = { events: windowEvents, windowMs };
  windowEvents = limit.events;
  windowMs = limit.windowMs;
  return old;
}
