/**
 * plugsconc: run third-party Deno plugins, each in a sandbox compiled from its manifest.
 *
 * @example
 * ```ts
 * import { loadConfig } from "plugsconc";
 * const { config } = await loadConfig("config.yaml", { optional: true });
 * ```
 *
 * @module
 */
export { causeChain, errorToJSON, PlugsconcError } from "./src/errors/mod.ts";
export {
  type Config,
  ConfigError,
  type ConfigInput,
  ConfigSchema,
  loadConfig,
  type LoadConfigOptions,
  type LoadedConfig,
  maskSecrets,
  parseConfig,
  resolveConfig,
  type YamlIssue,
} from "./src/config/mod.ts";
export { setupLogging, type SetupLoggingOptions } from "./src/logs/mod.ts";
export { type CliIo, memoryIo, runCli } from "./src/cli/mod.ts";
export { VERSION } from "./src/version.ts";
