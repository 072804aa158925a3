import { getLogger } from "@logtape/logtape";
import type { MetricsRegistry } from "../metrics/mod.ts";
import type { CompiledSandbox } from "../sandbox/mod.ts";
import type { AuditTrail } from "./audit_trail.ts";
import { isInside } from "../manifest/mod.ts";
import { SOCKET_ENV } from "../sandbox/socket_grants.ts";
import type { GrantSet } from "./permission_check.ts";
import { PermissionAuditPipe } from "./permission_audit_pipe.ts";
import { PermissionTally, type TallyGaps, type UsageEntry } from "./permission_tally.ts";

const log = getLogger(["plugsconc", "audit"]);

const GAP_REASONS = [
  ["overflow", "overflow"],
  ["deniedOverflow", "denied_overflow"],
  ["skipped", "skipped"],
  ["malformed", "malformed"],
] as const;

/** Options of {@linkcode openProcessAudit}. */
export interface ProcessAuditOptions {
  readonly compiled: CompiledSandbox;
  /** Candidate folders for the FIFO, first that no grant covers wins. */
  readonly dirs: readonly string[];
  /** Where usage totals and denied attempts go; without one only metrics are kept. */
  readonly trail?: AuditTrail;
  readonly metrics?: MetricsRegistry;
  /** How often usage totals are written to the trail; default 1000 ms. */
  readonly flushMs?: number;
  /** Denied-attempt audit events per process at most (more are counted, not logged); default 50. */
  readonly maxDeniedEvents?: number;
  /** The process's protocol socket: its checks are the host's grant, not counted. */
  readonly socketPath?: string;
}

/** A plugin process's permission audit: the env to give it, and `close()` at its exit. */
export interface ProcessAudit extends AsyncDisposable {
  /** `{ DENO_AUDIT_PERMISSIONS: <fifo> }`. */
  readonly env: Readonly<Record<string, string>>;
  readonly tally: PermissionTally;
  close(): Promise<void>;
}

/** The grants of a compiled sandbox, as the tally matches checks against them. */
export function grantSetOf(compiled: CompiledSandbox): GrantSet {
  return {
    read: compiled.grants.read,
    write: compiled.grants.write,
    net: compiled.grants.net,
    env: compiled.grants.env,
    cwd: compiled.plugin.dir,
  };
}

/**
 * Starts auditing one plugin process: a FIFO in the first of `dirs` that none of its read or
 * write grants covers (so the plugin can neither read nor write what the runtime reports),
 * read into a bounded {@linkcode PermissionTally}; totals go to the trail every `flushMs` and
 * at close, each newly denied (permission, value) becomes a `permission.denied` event, and
 * checks the tally could not keep or examine one `permission.audit_incomplete` event at close.
 * Returns `undefined` (and warns) when no folder qualifies or no FIFO can be made.
 */
export async function openProcessAudit(
  plugin: string,
  options: ProcessAuditOptions,
): Promise<ProcessAudit | undefined> {
  const grants = grantSetOf(options.compiled);
  const covered = (dir: string) => [...grants.read, ...grants.write].some((g) => isInside(dir, g));
  const dir = options.dirs.find((d) => !covered(d));
  if (dir === undefined) {
    log.warning("plugin {plugin}: no folder outside its grants for the permission audit; off", {
      plugin,
    });
    return undefined;
  }
  const checks = options.metrics?.counter(
    "plugsconc_permission_checks_total",
    "Permission checks a plugin's Deno runtime made, by outcome (granted or denied).",
    ["plugin", "permission", "outcome"],
  );
  const dropped = options.metrics?.counter(
    "plugsconc_permission_audit_dropped_total",
    "Permission audit lines a plugin's runtime wrote that its report does not hold, by reason " +
      "(overflow, denied_overflow: pairs past the bound; skipped: over the rate, not examined; " +
      "malformed).",
    ["plugin", "reason"],
  );
  let reported: TallyGaps = { overflow: 0, deniedOverflow: 0, skipped: 0, malformed: 0 };
  const maxDenied = options.maxDeniedEvents ?? 50;
  let deniedEvents = 0;
  const onDenied = (e: UsageEntry) => {
    if (deniedEvents++ >= maxDenied) return;
    try {
      options.trail?.append({
        kind: "permission.denied",
        plugin,
        detail: { permission: e.permission, value: e.value },
      });
    } catch (error) {
      log.warning("plugin {plugin}: audit trail write failed: {error}", { plugin, error });
    }
  };
  const ignore = options.socketPath === undefined
    ? []
    : [options.socketPath, `unix:${options.socketPath}`, SOCKET_ENV];
  const tally = new PermissionTally(grants, { onDenied, ignore });
  const flush = () => {
    const increments = tally.drain();
    for (const e of increments) {
      checks?.inc([plugin, e.permission, e.granted ? "granted" : "denied"], e.count);
    }
    const gaps = tally.gaps();
    for (const [k, reason] of GAP_REASONS) {
      if (gaps[k] > reported[k]) dropped?.inc([plugin, reason], gaps[k] - reported[k]);
    }
    reported = gaps;
    if (increments.length === 0 || options.trail === undefined) return;
    try {
      options.trail.addUsage(plugin, increments);
    } catch (error) {
      log.warning("plugin {plugin}: audit trail write failed: {error}", { plugin, error });
    }
  };
  let pipe: PermissionAuditPipe;
  try {
    pipe = await PermissionAuditPipe.open({ dir, onLine: (l) => tally.addLine(l) });
  } catch (error) {
    log.warning("plugin {plugin}: permission audit off: {error}", { plugin, error });
    return undefined;
  }
  const timer = setInterval(flush, options.flushMs ?? 1000);
  Deno.unrefTimer(timer);
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      try {
        await pipe.close();
      } finally {
        clearInterval(timer);
        flush();
        try {
          if (deniedEvents > maxDenied) {
            options.trail?.append({
              kind: "permission.denied_more",
              plugin,
              detail: { notLogged: deniedEvents - maxDenied },
            });
          }
          const gaps = tally.gaps();
          if (Object.values(gaps).some((n) => n > 0)) {
            // The report built from the totals is incomplete: say by how much, and why.
            options.trail?.append({
              kind: "permission.audit_incomplete",
              plugin,
              detail: { ...gaps },
            });
          }
        } catch (error) {
          log.warning("plugin {plugin}: audit trail write failed: {error}", { plugin, error });
        }
      }
    })();
  return {
    env: { DENO_AUDIT_PERMISSIONS: pipe.path },
    tally,
    close,
    [Symbol.asyncDispose]: close,
  };
}
