import { dirname, isAbsolute, resolve } from "node:path";
import { maskLeaves } from "../schema/config_secrets.ts";
import { ConfigError } from "./config_error.ts";
import { type EnvLookup, expandEnv } from "./env_expand.ts";
import { type Config, ConfigSchema } from "./schema.ts";
import { validateSource } from "./validate.ts";
import { parseYamlSource, readLimited, type YamlLimits, type YamlSource } from "./yaml_source.ts";

/** A validated config and where it came from. */
export interface LoadedConfig {
  /** Every default filled in, `${VAR}`s expanded, paths absolute. */
  readonly config: Config;
  /** Absolute path of the file read, or `undefined` when defaults were used. */
  readonly file: string | undefined;
  /** The folder relative paths were resolved against. */
  readonly baseDir: string;
  /** Paths of values taken from the environment (masked by {@link maskSecrets}). */
  readonly fromEnv: readonly (readonly PropertyKey[])[];
}

/** Options for {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Environment lookup for `${VAR}`. Default: `Deno.env.get`. */
  env?: EnvLookup;
  /** A missing file yields the defaults instead of `CONFIG_NOT_FOUND`. Default `false`. */
  optional?: boolean;
  /** YAML limits. Default: 1 MiB, 100 aliases, depth 64. */
  limits?: YamlLimits;
}

function defaultEnv(name: string): string | undefined {
  return Deno.env.get(name);
}

/**
 * Reads, parses, expands and validates a config file.
 *
 * @example
 * ```ts
 * const { config } = await loadConfig("config.yaml", { optional: true });
 * console.log(config.dirs.plugins); // absolute
 * ```
 * @throws {ConfigError} with `file:line:col`, YAML path, found and expected for each problem
 */
export async function loadConfig(
  path: string,
  options: LoadConfigOptions = {},
): Promise<LoadedConfig> {
  const file = resolve(path);
  let text: string;
  try {
    text = await readLimited(file, options.limits?.maxBytes ?? 1024 * 1024, "config file");
  } catch (e) {
    if (options.optional && e instanceof ConfigError && e.code === "CONFIG_NOT_FOUND") {
      return resolveConfig({}, { baseDir: dirname(file), env: options.env });
    }
    throw e;
  }
  return parseConfig(text, file, options);
}

/** Parses config text already in memory; `file` names it in errors and anchors relative paths. */
export function parseConfig(
  text: string,
  file: string,
  options: Omit<LoadConfigOptions, "optional"> = {},
): LoadedConfig {
  const source = parseYamlSource(text, file, options.limits, "config file");
  return finish(source, dirname(resolve(file)), file, options.env);
}

/** Validates a config given as an object (library use: `PluginHost.start({ config })`). */
export function resolveConfig(
  input: unknown,
  options: { baseDir?: string; env?: EnvLookup } = {},
): LoadedConfig {
  const source: YamlSource = {
    file: "<config object>",
    value: input,
    locate: () => ({ line: 0, column: 0 }),
    has: () => false,
  };
  return finish(source, resolve(options.baseDir ?? Deno.cwd()), undefined, options.env);
}

function finish(
  source: YamlSource,
  baseDir: string,
  file: string | undefined,
  env: EnvLookup = defaultEnv,
): LoadedConfig {
  const { value, fromEnv } = expandEnv(source, env);
  const parsed = validateSource(ConfigSchema, source, {
    code: "CONFIG_INVALID",
    kind: "config",
    value: value ?? {},
  });
  return { config: resolvePaths(parsed, baseDir), file, baseDir, fromEnv };
}

function resolvePaths(config: Config, baseDir: string): Config {
  const abs = (p: string) => isAbsolute(p) ? p : resolve(baseDir, p);
  const data = abs(config.dirs.data);
  const deno = config.runtime.deno;
  return {
    ...config,
    dirs: { plugins: abs(config.dirs.plugins), data },
    logging: {
      ...config.logging,
      file: { ...config.logging.file, path: abs(config.logging.file.path) },
      store: {
        ...config.logging.store,
        db_file: isAbsolute(config.logging.store.db_file)
          ? config.logging.store.db_file
          : resolve(data, config.logging.store.db_file),
      },
    },
    security: { ...config.security, allowed_roots: config.security.allowed_roots.map(abs) },
    server: config.server.tls === undefined ? config.server : {
      ...config.server,
      tls: { cert: abs(config.server.tls.cert), key: abs(config.server.tls.key) },
    },
    runtime: deno !== undefined && deno.includes("/") ? { deno: abs(deno) } : config.runtime,
  };
}

/**
 * A copy of `config` with every value that came from the environment replaced by `***`, and
 * every value of each `plugins.<name>.config` too: only its plugin's `config.schema` says which
 * of them are secret, so a caller that has it shows them with `maskConfig` instead.
 */
export function maskSecrets(loaded: LoadedConfig): unknown {
  const copy = structuredClone(loaded.config) as Record<PropertyKey, unknown>;
  for (const path of loaded.fromEnv) {
    let node: unknown = copy;
    for (const key of path.slice(0, -1)) {
      node = node !== null && typeof node === "object"
        ? (node as Record<PropertyKey, unknown>)[key]
        : undefined;
    }
    const last = path[path.length - 1];
    if (last !== undefined && node !== null && typeof node === "object" && last in node) {
      (node as Record<PropertyKey, unknown>)[last] = "***";
    }
  }
  // Secrets written into the file itself are masked too: they are secrets wherever they came from.
  const plugins = copy.plugins as Record<string, { config?: unknown } | undefined> | undefined;
  for (const entry of Object.values(plugins ?? {})) {
    if (entry?.config !== undefined) entry.config = maskLeaves(entry.config);
  }
  const server = copy.server as Record<string, unknown> | undefined;
  if (typeof server?.token === "string") server.token = "***";
  const nats = (copy.remote as { nats?: Record<string, unknown> } | undefined)?.nats;
  if (nats !== undefined) {
    for (const key of ["token", "pass"]) if (typeof nats[key] === "string") nats[key] = "***";
    if (Array.isArray(nats.servers)) nats.servers = nats.servers.map(maskUrlCredentials);
  }
  return copy;
}

/** `nats://user:pass@h` -> `nats://user:***@h`; `nats://token@h` -> `nats://***@h`. */
function maskUrlCredentials(url: unknown): unknown {
  if (typeof url !== "string") return url;
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@/i, (_, scheme: string, info: string) => {
    const colon = info.indexOf(":");
    return `${scheme}${colon >= 0 ? `${info.slice(0, colon)}:***` : "***"}@`;
  });
}
