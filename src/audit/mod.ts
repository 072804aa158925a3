/**
 * Security auditing: the permission audit of plugin processes (Deno's
 * `DENO_AUDIT_PERMISSIONS` stream, read from a FIFO into bounded totals), the report of
 * declared grants against what was used or denied, and the append-only, hash-chained audit
 * trail of security events (`dirs.data/audit.db`).
 *
 * @module
 */
export {
  type AuditEvent,
  type AuditQuery,
  type AuditRow,
  AuditTrail,
  type AuditVerdict,
  rowHash,
} from "./audit_trail.ts";
export { AuditError, type AuditErrorCode } from "./audit_error.ts";
export { appendAuditEvent, auditTrailPath } from "./audit_paths.ts";
export {
  type ClassifiedCheck,
  classifyCheck,
  type GrantSet,
  parsePermissionCheck,
  type PermissionCheck,
} from "./permission_check.ts";
export { PermissionAuditPipe, type PermissionAuditPipeOptions } from "./permission_audit_pipe.ts";
export {
  PermissionTally,
  type PermissionTallyOptions,
  type TallyGaps,
  type UsageEntry,
} from "./permission_tally.ts";
export {
  type DeniedAttempt,
  formatPermissionReport,
  type GrantUsage,
  incompleteLines,
  type PermissionReport,
  permissionReport,
} from "./permission_report.ts";
export {
  grantSetOf,
  openProcessAudit,
  type ProcessAudit,
  type ProcessAuditOptions,
} from "./process_audit.ts";
export { attachAuditTrail, attachedAuditTrails, auditEvent } from "./audit_hook.ts";
export { argvHash, codeHash } from "./code_hash.ts";
export {
  type CapabilityProposal,
  proposeCapabilities,
  type ProposedAddition,
  type RefusedAddition,
} from "./learn_proposal.ts";
