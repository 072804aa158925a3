import { join } from "node:path";
import type { Config } from "../config/mod.ts";
import { type AuditEvent, AuditTrail } from "./audit_trail.ts";

/** The audit trail's database: `dirs.data/audit.db` (a file of its own, not the log store). */
export function auditTrailPath(config: Config): string {
  return join(config.dirs.data, "audit.db");
}

/**
 * Appends one event to the config's trail from a short command (`plugins inspect`), opening
 * and closing it. Never throws: a trail that cannot be written only loses the event.
 */
export function appendAuditEvent(config: Config, actor: string, event: AuditEvent): boolean {
  try {
    using trail = AuditTrail.open(auditTrailPath(config), { actor });
    trail.append(event);
    return true;
  } catch {
    return false;
  }
}
