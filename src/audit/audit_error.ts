import { PlugsconcError } from "../errors/mod.ts";

/** Error codes of {@linkcode AuditError}. */
export type AuditErrorCode =
  /** The trail's file cannot be opened or created, or is no audit trail (empty, corrupt). */
  | "AUDIT_OPEN"
  /** There is no trail at the configured path yet. */
  | "AUDIT_MISSING"
  /** The trail opened but a read failed (a corrupt page). */
  | "AUDIT_READ"
  /** `audit verify` found an edited, inserted or deleted row. */
  | "AUDIT_CHAIN_BROKEN";

/** A failure of the audit trail; `details.path` names the database file. */
export class AuditError extends PlugsconcError {
  declare readonly code: AuditErrorCode;

  /**
   * @param code one of {@linkcode AuditErrorCode}
   * @param message what failed, where (the file), and what to do
   * @param options `path`, `cause`, more details
   */
  constructor(
    code: AuditErrorCode,
    message: string,
    options: { path: string; cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(code, message, {
      cause: options.cause,
      details: { path: options.path, ...options.details },
    });
  }
}
