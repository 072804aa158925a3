import type { Command } from "commander";
import { loadConfig, maskSecrets } from "../config/mod.ts";
import { PlugsconcError } from "../errors/mod.ts";
import { discoverPlugins } from "../manifest/mod.ts";
import { effectivePolicy, explainPolicy } from "../pipeline/mod.ts";
import { VERSION } from "../version.ts";
import type { CliContext } from "./context.ts";

/** `config check [path] [--json]`: validates a config file; `--json` prints the effective config. */
export function registerConfigCheck(parent: Command, ctx: CliContext): void {
  parent
    .command("check")
    .description(
      "validate a config file (default: --config); --json prints the effective config with " +
        "defaults and expanded values, values from ${VAR} masked as ***",
    )
    .argument("[path]", "config file to check")
    .option("--json", "print the effective config (or the error) as JSON on stdout")
    .action(async (path: string | undefined, opts: { json?: boolean }) => {
      const globals = ctx.globals();
      const file = path ?? globals.config;
      try {
        const loaded = await loadConfig(file, {
          optional: path === undefined && !globals.configExplicit,
        });
        // The call policy of each plugin found: config defaults, overrides and its manifest.
        // A plugins folder that is missing or unreadable is not the config's error here.
        const { plugins } = await discoverPlugins(loaded.config.dirs.plugins, {
          hostVersion: VERSION,
        }).catch(() => ({ plugins: [] }));
        const policies = Object.fromEntries(
          plugins.map((p) => [p.name, effectivePolicy(loaded.config, p)]),
        );
        if (opts.json) {
          ctx.io.out(
            JSON.stringify(
              { ok: true, file: loaded.file ?? null, config: maskSecrets(loaded), policies },
              null,
              2,
            ) + "\n",
          );
        } else {
          const c = loaded.config;
          ctx.io.out(
            `${loaded.file ?? `${file} (not found: using defaults)`}: ok\n` +
              `  plugins dir: ${c.dirs.plugins}\n  data dir:    ${c.dirs.data}\n` +
              `  policy:      ${c.security.policy}\n  log level:   ${c.logging.level}\n` +
              Object.entries(policies).map(([name, p]) =>
                `\nplugin ${name}:\n` + explainPolicy(p).trimEnd().replace(/^/gm, "  ") + "\n"
              ).join(""),
          );
        }
      } catch (e) {
        if (opts.json && e instanceof PlugsconcError) {
          ctx.io.out(JSON.stringify({ ok: false, error: e.toJSON() }, null, 2) + "\n");
        }
        throw e;
      }
    });
}
