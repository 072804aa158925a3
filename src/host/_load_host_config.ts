import { loadConfig, type LoadedConfig, resolveConfig } from "../config/mod.ts";
import type { PluginHostOptions } from "./plugin_host_options.ts";

/** The config of a start: an already loaded one as is, an object resolved, or a file loaded. */
export async function loadHostConfig(options: PluginHostOptions): Promise<LoadedConfig> {
  if (options.config !== undefined) {
    const c = options.config as Partial<LoadedConfig>;
    if (c.config !== undefined && c.fromEnv !== undefined) return c as LoadedConfig;
    return resolveConfig(options.config, { baseDir: options.baseDir });
  }
  return await loadConfig(options.configPath ?? "config.yaml", {
    optional: options.configPath === undefined,
  });
}
