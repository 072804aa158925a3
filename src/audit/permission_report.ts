import type { CompiledSandbox } from "../sandbox/mod.ts";
import { inert, quoted } from "./_quote.ts";
import { isInside } from "../manifest/mod.ts";
import type { TallyGaps, UsageEntry } from "./permission_tally.ts";

/** One declared grant and whether the plugin used it. */
export interface GrantUsage {
  /** Manifest path, e.g. `capabilities.filesystem[0]`, `capabilities.env[1]`. */
  readonly at: string;
  /** `read`, `write`, `net` or `env`. */
  readonly permission: string;
  /** As the manifest writes it. */
  readonly declared: string;
  /** What Deno was given (resolved path, `host:port`, env name). */
  readonly granted: string;
  readonly used: boolean;
  readonly count: number;
  /** ISO time of the last check, or null. */
  readonly lastUse: string | null;
}

/** A check Deno refused. */
export interface DeniedAttempt {
  readonly permission: string;
  readonly value: string;
  readonly count: number;
  readonly lastUse: string;
}

/** Declared grants against what the plugin's runtime checked. */
export interface PermissionReport {
  readonly plugin: string;
  readonly grants: readonly GrantUsage[];
  readonly denied: readonly DeniedAttempt[];
  /**
   * Checks the totals do not hold (all zero: the report is complete). `skipped` checks were
   * never examined, so a denial may be among them.
   */
  readonly incomplete: TallyGaps;
}

const NO_GAPS: TallyGaps = { overflow: 0, deniedOverflow: 0, skipped: 0, malformed: 0 };

/**
 * Matches usage totals to the grants a sandbox declares: a filesystem grant is used when a
 * granted check of its kind fell under its path; net and env grants by exact value. Checks of
 * grants the host adds itself (the handshake cookie's env name) match no declared grant and
 * are left out.
 */
export function permissionReport(
  compiled: CompiledSandbox,
  usage: readonly UsageEntry[],
  gaps: TallyGaps = NO_GAPS,
): PermissionReport {
  const grants: GrantUsage[] = [];
  const add = (
    at: string,
    permission: string,
    declared: string,
    granted: string,
    match: (e: UsageEntry) => boolean,
  ) => {
    const hits = usage.filter((e) => e.granted && e.permission === permission && match(e));
    const count = hits.reduce((n, e) => n + e.count, 0);
    const last = hits.reduce((t, e) => Math.max(t, e.lastUse), 0);
    grants.push({
      at,
      permission,
      declared,
      granted,
      used: count > 0,
      count,
      lastUse: last > 0 ? new Date(last).toISOString() : null,
    });
  };
  for (const g of compiled.fs) {
    if (g.read) add(g.at, "read", g.declared, g.path, (e) => isInside(e.value, g.path));
    if (g.write) add(g.at, "write", g.declared, g.path, (e) => isInside(e.value, g.path));
  }
  const m = compiled.plugin.manifest.capabilities;
  m.network.egress.forEach((r, i) => {
    for (const host of r.hosts) {
      for (const port of r.ports) {
        const hp = `${host.includes(":") ? `[${host}]` : host}:${port}`;
        add(`capabilities.network.egress[${i}]`, "net", hp, hp, (e) => e.value === hp);
      }
    }
  });
  m.network.ingress.forEach((r, i) => {
    for (const port of r.ports) {
      const hp = `0.0.0.0:${port}`;
      add(`capabilities.network.ingress[${i}]`, "net", String(port), hp, (e) => e.value === hp);
    }
  });
  m.env.forEach((name, i) =>
    add(`capabilities.env[${i}]`, "env", name, name, (e) => e.value === name)
  );
  const denied = usage.filter((e) => !e.granted).map((e) => ({
    permission: e.permission,
    value: e.value,
    count: e.count,
    lastUse: new Date(e.lastUse).toISOString(),
  }));
  return { plugin: compiled.plugin.name, grants, denied, incomplete: { ...gaps } };
}

/**
 * The report as the text `plugins permissions` prints. Values the plugin controls (the paths
 * it tried, its manifest's text) are JSON-quoted, so none can add a line or a terminal escape.
 */
export function formatPermissionReport(r: PermissionReport): string {
  const lines = [`plugin ${inert(r.plugin)}: declared grants`];
  if (r.grants.length === 0) lines.push("  (none)");
  for (const g of r.grants) {
    lines.push(
      `  ${g.used ? "used  " : "UNUSED"} ${g.permission.padEnd(5)} ${quoted(g.declared)}` +
        (g.granted !== g.declared ? ` (${quoted(g.granted)})` : "") +
        (g.used ? `: ${g.count} check(s), last ${g.lastUse}` : ": never used") + `  [${g.at}]`,
    );
  }
  lines.push("denied attempts");
  if (r.denied.length === 0) lines.push("  (none)");
  for (const d of r.denied) {
    lines.push(
      `  ${inert(d.permission).padEnd(5)} ${
        quoted(d.value)
      }: ${d.count} time(s), last ${d.lastUse}`,
    );
  }
  lines.push(...incompleteLines(r.incomplete, ""));
  return lines.join("\n") + "\n";
}

/**
 * Lines saying what the totals behind a report do not hold (none when they hold every
 * check), each starting with `prefix`.
 */
export function incompleteLines(g: TallyGaps, prefix: string): string[] {
  const out: string[] = [];
  if (g.skipped > 0) {
    out.push(
      `${prefix}  ${g.skipped} check(s) not examined (over the audit's rate limit): ` +
        "granted or denied is unknown, a denied attempt may be among them",
    );
  }
  if (g.deniedOverflow > 0) {
    out.push(
      `${prefix}  ${g.deniedOverflow} denied check(s) of pairs past the per-process bound: ` +
        "logged as permission.denied events (up to their cap), not counted above",
    );
  }
  if (g.overflow > 0) {
    out.push(
      `${prefix}  ${g.overflow} granted check(s) of pairs past the per-process bound, not counted`,
    );
  }
  if (g.malformed > 0) out.push(`${prefix}  ${g.malformed} audit line(s) that were not checks`);
  return out.length === 0
    ? []
    : [`${prefix}INCOMPLETE: the audit did not hold every check`, ...out];
}
