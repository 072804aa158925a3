/**
 * Host configuration: the zod schema of `config.yaml`, YAML loading with size, alias and
 * depth limits, `${VAR}` expansion, and located errors.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./mod.ts";
 * const { config } = await loadConfig("config.yaml", { optional: true });
 * ```
 * @module
 */
export { ConfigError, formatIssue, type YamlIssue } from "./config_error.ts";
export { type EnvLookup, type Expanded, expandEnv } from "./env_expand.ts";
export {
  loadConfig,
  type LoadConfigOptions,
  type LoadedConfig,
  maskSecrets,
  parseConfig,
  resolveConfig,
} from "./load_config.ts";
export {
  type Config,
  type ConfigInput,
  ConfigSchema,
  LOG_LEVELS,
  type LogLevelName,
  type PluginDefaults,
  type PluginOverride,
} from "./schema.ts";
export { describeValue, validateSource } from "./validate.ts";
export {
  DEFAULT_YAML_LIMITS,
  findExcessiveNesting,
  formatPath,
  parseYamlSource,
  readLimited,
  type YamlLimits,
  type YamlSource,
} from "./yaml_source.ts";
