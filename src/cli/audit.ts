import type { Command } from "commander";
import { AuditError, AuditTrail, auditTrailPath } from "../audit/mod.ts";
import { loadConfig } from "../config/mod.ts";
import { PlugsconcError } from "../errors/mod.ts";
import type { CliContext } from "./context.ts";
import { UsageError } from "./exit_codes.ts";
import { parseTimeArg } from "./logs.ts";
import { formatTable } from "./table.ts";

interface QueryOptions {
  plugin?: string;
  kind?: string;
  since?: string;
  until?: string;
  grep?: string;
  limit?: string;
  json?: boolean;
}

/** `audit verify` and `audit query`: the hash-chained trail of security events. */
export function registerAudit(program: Command, ctx: CliContext): Command {
  const audit = program.command("audit").description(
    "the audit trail of security events (dirs.data/audit.db)",
  );
  audit
    .command("verify")
    .description("check the hash chain: exit 1 and name the first edited or deleted row")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      using trail = await openTrail(ctx);
      const v = reading(trail, () => trail.verify());
      if (opts.json) ctx.io.out(JSON.stringify({ path: trail.path, ...v }, null, 2) + "\n");
      else if (v.ok) ctx.io.out(`audit trail ${trail.path}: ok, ${v.rows} row(s), chain intact\n`);
      if (!v.ok) {
        throw new AuditError(
          "AUDIT_CHAIN_BROKEN",
          `audit trail ${trail.path}: row ${v.broken!.id}: ${v.broken!.reason}; the trail was ` +
            "changed outside plugsconc (keep a copy of the file as evidence)",
          { path: trail.path, details: { ...v.broken } },
        );
      }
    });
  audit
    .command("query")
    .description("security events, oldest first, filtered like `logs query`")
    .option("--plugin <name>", "only events of this plugin")
    .option("--kind <kind>", "exact kind (plugin.start) or a prefix ending in . (permission.)")
    .option("--since <when>", "from this time: a duration back (15m, 2h, 1d) or a date/time")
    .option("--until <when>", "up to this time")
    .option("--grep <text>", "detail contains this text")
    .option("--limit <n>", "newest n events (default 100)")
    .option("--json", "print JSON lines")
    .action(async (opts: QueryOptions) => {
      const now = Date.now();
      const limit = opts.limit === undefined ? undefined : Number(opts.limit);
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
        throw new UsageError(`--limit must be a positive whole number, got ${opts.limit}`);
      }
      using trail = await openTrail(ctx);
      const rows = reading(trail, () =>
        trail.query({
          plugin: opts.plugin,
          kind: opts.kind,
          since: opts.since === undefined ? undefined : parseTimeArg(opts.since, now, "--since"),
          until: opts.until === undefined ? undefined : parseTimeArg(opts.until, now, "--until"),
          grep: opts.grep,
          limit,
        }));
      if (opts.json) {
        for (const r of rows) {
          ctx.io.out(
            JSON.stringify({
              ...r,
              time: new Date(r.ts).toISOString(),
              detail: parseDetail(r.detail),
            }) + "\n",
          );
        }
        return;
      }
      ctx.io.out(formatTable(
        ["ID", "TIME", "KIND", "PLUGIN", "ACTOR", "DETAIL"],
        rows.map((r) => [
          String(r.id),
          new Date(r.ts).toISOString(),
          r.kind,
          r.plugin ?? "-",
          r.actor,
          r.detail.length > 160 ? r.detail.slice(0, 157) + "..." : r.detail,
        ]),
      ));
    });
  return audit;
}

async function openTrail(ctx: CliContext): Promise<AuditTrail> {
  const globals = ctx.globals();
  const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
  const path = auditTrailPath(loaded.config);
  try {
    await Deno.stat(path);
  } catch {
    throw new AuditError(
      "AUDIT_MISSING",
      `there is no audit trail at ${path} yet; the host creates it when it starts a plugin (check --config and dirs.data)`,
      { path },
    );
  }
  return AuditTrail.open(path, { readOnly: true });
}

/** A row's detail as JSON, or the stored text when it is not JSON (a row edited outside). */
function parseDetail(detail: string): unknown {
  try {
    return JSON.parse(detail);
  } catch {
    return detail;
  }
}

/** Runs a read of the trail; what SQLite throws (a corrupt page) becomes `AUDIT_READ`. */
function reading<T>(trail: AuditTrail, read: () => T): T {
  try {
    return read();
  } catch (cause) {
    if (cause instanceof PlugsconcError || cause instanceof RangeError) throw cause;
    throw new AuditError(
      "AUDIT_READ",
      `cannot read the audit trail ${trail.path}: ${(cause as Error).message}; the file is ` +
        "damaged: keep a copy as evidence, move it aside and the host starts a new trail",
      { path: trail.path, cause },
    );
  }
}
