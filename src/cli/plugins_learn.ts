import type { Command } from "commander";
import {
  auditEvent,
  incompleteLines,
  proposeCapabilities,
  type TallyGaps,
  type UsageEntry,
} from "../audit/mod.ts";
import { loadConfig } from "../config/mod.ts";
import { PluginHost } from "../host/mod.ts";
import { escapeControl } from "../runtime/mod.ts";
import type { CliContext } from "./context.ts";
import { UsageError } from "./exit_codes.ts";
import { setupCommandLogging } from "./host_logging.ts";
import { compileNow, lookUpPlugin } from "./plugin_lookup.ts";
import { storedAudit } from "./plugins_permissions.ts";
import { listenForStop } from "./run.ts";

/**
 * `plugins learn <name> [--calls file.jsonl]`: what the plugin uses, as a proposed
 * `capabilities:` block. It never changes a manifest or a running plugin's grants.
 */
export function registerLearnCommand(plugins: Command, ctx: CliContext): void {
  plugins
    .command("learn")
    .description(
      "run the plugin under its grants and replay --calls (or, without it, watch while `run` " +
        "serves it until Ctrl-C), then print a proposed capabilities: block",
    )
    .argument("<name>", "plugin name")
    .option("--calls <file>", 'JSON lines {"method":"speak","params":{...}} to call in order')
    .option("--json", "print JSON")
    .action(async (name: string, opts: { calls?: string; json?: boolean }) => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      await using _logging = await setupCommandLogging(loaded, globals.verbose);
      const config = loaded.config;
      const found = await lookUpPlugin(loaded, name);
      const { plugin } = found;
      const { context: sandboxCtx, compiled } = compileNow(loaded, found);
      const calls = opts.calls === undefined ? undefined : await readCalls(opts.calls);
      const before = storedAudit(config, name);
      const failures: string[] = [];
      if (calls !== undefined) {
        {
          await using host = await PluginHost.start({
            config: loaded,
            only: [name],
            watch: false,
            auditActor: "plugins learn",
          });
          for (const c of calls) {
            await host.call(name, c.method, c.params, { signal: ctx.io.signal }).catch((e) =>
              failures.push(`${c.method}: ${String((e as Error)?.message ?? e)}`)
            );
          }
          auditEvent({ kind: "learn.session", plugin: name, detail: { calls: calls.length } });
        }
      } else {
        ctx.io.err(`watching ${name} while \`run\` serves it; Ctrl-C to stop and propose\n`);
        using stop = listenForStop(ctx.io.signal);
        await stop.requested;
      }
      const after = storedAudit(config, name);
      const session = delta(before.usage, after.usage);
      const incomplete = gapsDelta(before.gaps, after.gaps);
      const proposal = proposeCapabilities(compiled, sandboxCtx, session);
      if (opts.json) {
        const { text, ...rest } = proposal;
        ctx.io.out(JSON.stringify({ ...rest, failures, incomplete, yaml: text }, null, 2) + "\n");
        return;
      }
      ctx.io.out(
        `# proposed by \`plugsconc plugins learn ${name}\` from ${
          session.reduce((n, e) => n + e.count, 0)
        } permission check(s); review it, then edit ${plugin.dir}/manifest.yaml\n` +
          proposal.text +
          failures.map((f) => `# call failed: ${escapeControl(JSON.stringify(f))}\n`).join("") +
          incompleteLines(incomplete, "# ").map((l) => l + "\n").join(""),
      );
    });
}

async function readCalls(path: string): Promise<{ method: string; params: unknown }[]> {
  const text = await Deno.readTextFile(path).catch((e) => {
    throw new UsageError(`--calls ${path}: ${(e as Error).message}`);
  });
  return text.split("\n").flatMap((line, i) => {
    if (line.trim() === "") return [];
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new UsageError(`--calls ${path}:${i + 1}: not JSON: ${(e as Error).message}`);
    }
    const o = v as { method?: unknown; params?: unknown } | null;
    if (typeof o?.method !== "string") {
      throw new UsageError(`--calls ${path}:${i + 1}: expected {"method":"...","params":...}`);
    }
    return [{ method: o.method, params: o.params }];
  });
}

/** The checks made between two snapshots of the stored totals. */
function delta(before: readonly UsageEntry[], after: readonly UsageEntry[]): UsageEntry[] {
  const old = new Map(before.map((e) => [`${e.permission}\0${e.value}`, e.count]));
  return after.flatMap((e) => {
    const n = e.count - (old.get(`${e.permission}\0${e.value}`) ?? 0);
    return n > 0 ? [{ ...e, count: n }] : [];
  });
}

/** What the stored totals missed between two snapshots. */
function gapsDelta(before: TallyGaps, after: TallyGaps): TallyGaps {
  return {
    overflow: after.overflow - before.overflow,
    deniedOverflow: after.deniedOverflow - before.deniedOverflow,
    skipped: after.skipped - before.skipped,
    malformed: after.malformed - before.malformed,
  };
}
