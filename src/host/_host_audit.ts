import { getLogger } from "@logtape/logtape";
import { createHash } from "node:crypto";
import { AuditTrail, auditTrailPath } from "../audit/mod.ts";
import type { Config, LoadedConfig } from "../config/mod.ts";
import { VERSION } from "../version.ts";

const log = getLogger(["plugsconc", "host"]);

/** `host.start` with the effective config's hash, and `config.changed` when it differs from the last. */
export function recordHostStart(trail: AuditTrail, loaded: LoadedConfig): void {
  try {
    const configSha256 = createHash("sha256").update(JSON.stringify(loaded.config)).digest("hex");
    const last = trail.query({ kind: "host.start", limit: 1 })[0];
    const before = last
      ? (JSON.parse(last.detail) as { configSha256?: string }).configSha256
      : undefined;
    const detail = { configFile: loaded.file ?? null, configSha256, version: VERSION };
    if (before !== undefined && before !== configSha256) {
      trail.append({ kind: "config.changed", detail: { ...detail, previousSha256: before } });
    }
    trail.append({ kind: "host.start", detail });
  } catch (error) {
    log.error("audit trail: cannot record the host start: {error}", { error });
  }
}

/** The audit trail of `config`, or `undefined` (logged) when it cannot be opened. */
export function openAudit(config: Config, actor: string): AuditTrail | undefined {
  try {
    return AuditTrail.open(auditTrailPath(config), { actor });
  } catch (error) {
    // Security events then reach only the log; the host still runs.
    log.error("audit trail off: {error}", { error });
    return undefined;
  }
}
