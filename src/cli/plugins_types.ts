import type { Command } from "commander";
import { loadConfig } from "../config/mod.ts";
import { discoverPlugins } from "../manifest/mod.ts";
import { generateTypes } from "../schema/ts_types.ts";
import { VERSION } from "../version.ts";
import type { CliContext } from "./context.ts";
import { findPlugin } from "./plugin_lookup.ts";

/**
 * `plugins types <name>`: prints TypeScript types of a plugin's methods, from its manifest's
 * `methods.<m>.params|result` JSON Schemas, and the interface `host.client<T>(name)` takes.
 */
export function registerTypesCommand(pluginsCommand: Command, ctx: CliContext): void {
  pluginsCommand
    .command("types")
    .description(
      "print TypeScript types of a plugin's methods (from its manifest's params/result JSON " +
        "Schemas; unknown where there is none) and an interface for host.client<T>(name)",
    )
    .argument("<name>", "plugin name")
    .action(async (name: string) => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      const discovery = await discoverPlugins(loaded.config.dirs.plugins, {
        hostVersion: VERSION,
      });
      const { manifest } = findPlugin(discovery, name);
      ctx.io.out(generateTypes({
        name: manifest.plugin.name,
        version: manifest.plugin.version,
        methods: manifest.methods,
      }));
    });
}
