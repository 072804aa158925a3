import type { Command } from "commander";
import { ConfigError, loadConfig, type LoadedConfig, maskSecrets } from "../config/mod.ts";
import { errorToJSON, PlugsconcError } from "../errors/mod.ts";
import { configProblem } from "../host/mod.ts";
import { discoverPlugins, type PluginDescriptor } from "../manifest/mod.ts";
import { maskConfig } from "../schema/config_secrets.ts";
import { effectivePolicy, explainPolicy } from "../pipeline/mod.ts";
import { VERSION } from "../version.ts";
import type { CliContext } from "./context.ts";

/**
 * `config check [path] [--json]`: validates a config file; `--json` prints the effective config.
 * Plugin folders whose manifest cannot be read (and a plugins folder that cannot be read) do
 * not fail the check, which is about the config file, but are listed under `unchecked`: their
 * plugin's config was not checked, and is shown with every value as `***`.
 */
export function registerConfigCheck(parent: Command, ctx: CliContext): void {
  parent
    .command("check")
    .description(
      "validate a config file (default: --config); --json prints the effective config with " +
        "defaults and expanded values, secrets (${VAR} values, writeOnly fields, all of a " +
        "plugin config that fails or has no config.schema) masked as ***; plugin folders " +
        "that could not be read are listed as not checked",
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
        // A plugins folder that is unreadable is not the config's error here, but is reported.
        const { plugins, unchecked } = await discoverPlugins(loaded.config.dirs.plugins, {
          hostVersion: VERSION,
        }).then(
          (d) => ({
            plugins: d.plugins,
            unchecked: d.invalid.map((i) => ({ dir: i.dir, error: i.error as unknown })),
          }),
          (e: unknown) => ({
            plugins: [] as PluginDescriptor[],
            unchecked: [{ dir: loaded.config.dirs.plugins, error: e }],
          }),
        );
        const policies = Object.fromEntries(
          plugins.map((p) => [p.name, effectivePolicy(loaded.config, p)]),
        );
        // Each plugin's config against its manifest's config.schema, as at its start.
        checkPluginConfigs(loaded, plugins);
        if (opts.json) {
          ctx.io.out(
            JSON.stringify(
              {
                ok: true,
                file: loaded.file ?? null,
                config: masked(loaded, plugins),
                policies,
                unchecked: unchecked.map((u) => ({ dir: u.dir, error: errorToJSON(u.error) })),
              },
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
              ).join("") +
              unchecked.map((u) =>
                `\nnot checked: ${u.dir}: ${messageOf(u.error).split("\n").join(" ")}\n`
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

/**
 * `maskSecrets` (every value of a plugin's config as `***`), then the config of each plugin
 * found shown by `maskConfig`: its values, but its secrets as `***`, when it passes the
 * plugin's `config.schema`.
 */
function masked(loaded: LoadedConfig, plugins: readonly PluginDescriptor[]): unknown {
  const out = maskSecrets(loaded) as { plugins?: Record<string, { config?: unknown }> };
  for (const p of plugins) {
    const entry = out.plugins?.[p.name];
    if (entry?.config === undefined) continue;
    entry.config = maskConfig(loaded.config.plugins[p.name]?.config, {
      schema: p.manifest.config.schema,
      fromEnv: loaded.fromEnv,
      at: ["plugins", p.name, "config"],
    });
  }
  return out;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Refuses a config whose `plugins.<name>.config` fails that plugin's `config.schema`. */
function checkPluginConfigs(loaded: LoadedConfig, plugins: readonly PluginDescriptor[]): void {
  const issues = plugins.flatMap((p) => {
    const problem = configProblem(p, loaded.config);
    if (problem === undefined) return [];
    const at = problem.indexOf(": ");
    return [{
      file: loaded.file ?? "<defaults>",
      path: at < 0 ? `plugins.${p.name}.config` : problem.slice(0, at),
      line: 0,
      column: 0,
      message: at < 0 ? problem : problem.slice(at + 2),
    }];
  });
  if (issues.length > 0) {
    throw new ConfigError(
      "CONFIG_INVALID",
      `${loaded.file ?? "config"}: plugin config fails its manifest's config.schema`,
      issues,
    );
  }
}
