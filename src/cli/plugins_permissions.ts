import type { Command } from "commander";
import {
  AuditTrail,
  auditTrailPath,
  formatPermissionReport,
  type PermissionReport,
  permissionReport,
  type TallyGaps,
  type UsageEntry,
} from "../audit/mod.ts";
import { type Config, loadConfig, type LoadedConfig } from "../config/mod.ts";
import type { CompiledSandbox } from "../sandbox/mod.ts";
import type { CliContext } from "./context.ts";
import { setupCommandLogging } from "./host_logging.ts";
import { compileNow, lookUpPlugin } from "./plugin_lookup.ts";

/** `plugins permissions <name>`: declared grants used or never used, denied attempts. */
export function registerPermissionsCommand(plugins: Command, ctx: CliContext): void {
  plugins
    .command("permissions")
    .description(
      "each declared grant, used or never used (checks, last use), and each denied attempt, " +
        "from the permission audit of every run of the plugin",
    )
    .argument("<name>", "plugin name")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { json?: boolean }) => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      await using _logging = await setupCommandLogging(loaded, globals.verbose);
      const compiled = await compileFor(loaded, name);
      const stored = storedAudit(loaded.config, name);
      const report = permissionReport(compiled, stored.usage, stored.gaps);
      ctx.io.out(
        opts.json ? JSON.stringify(report, null, 2) + "\n" : formatPermissionReport(report),
      );
    });
}

/** The plugin's sandbox as the host would compile it now. */
export async function compileFor(loaded: LoadedConfig, name: string): Promise<CompiledSandbox> {
  return compileNow(loaded, await lookUpPlugin(loaded, name)).compiled;
}

/** Usage totals and what they miss ({@linkcode TallyGaps}) for `plugin` (none: no trail yet). */
export function storedAudit(
  config: Config,
  plugin: string,
): { usage: UsageEntry[]; gaps: TallyGaps } {
  const path = auditTrailPath(config);
  try {
    Deno.statSync(path);
  } catch {
    return { usage: [], gaps: { overflow: 0, deniedOverflow: 0, skipped: 0, malformed: 0 } };
  }
  using trail = AuditTrail.open(path, { readOnly: true });
  return { usage: trail.usage(plugin), gaps: trail.gaps(plugin) };
}

export type { PermissionReport };
