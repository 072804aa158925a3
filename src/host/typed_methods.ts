import { getLogger } from "@logtape/logtape";
import type { Config } from "../config/mod.ts";
import type { PluginDescriptor } from "../manifest/mod.ts";
import { compileSchema, type Validator } from "../schema/json_schema.ts";
import { InvalidParamsError, PluginConfigError } from "./typed_method_errors.ts";

const log = getLogger(["plugsconc", "host"]);

/** What the host sends in `$/configure` (see the README's wire protocol). */
export interface ConfigureParams {
  /** `plugins.<name>.config`, checked against `config.schema` (`{}` when only a schema exists). */
  readonly config?: unknown;
  /** Each method's `result` schema: the SDK checks results before sending them. */
  readonly results?: Readonly<Record<string, unknown>>;
  /** Each streaming method's `chunk` schema. */
  readonly chunks?: Readonly<Record<string, unknown>>;
}

/**
 * Params validators by method, compiled once per loaded plugin version: a descriptor is made
 * by each manifest load, so a reload compiles its own.
 */
const validators = new WeakMap<PluginDescriptor, ReadonlyMap<string, Validator>>();

function paramValidators(plugin: PluginDescriptor): ReadonlyMap<string, Validator> {
  let map = validators.get(plugin);
  if (map === undefined) {
    map = new Map(
      Object.entries(plugin.manifest.methods).flatMap(([method, spec]) =>
        spec.params === undefined
          ? []
          : [[method, compileSchema(spec.params, { root: "params" })] as const]
      ),
    );
    validators.set(plugin, map);
  }
  return map;
}

/**
 * Checks a call's params against the method's `params` schema, before the call reaches the
 * pipeline. Absent params (`undefined`) are checked as `null`: a method whose schema is
 * `type: object` needs params; `type: [object, "null"]` makes them optional. A method without
 * a schema takes anything.
 *
 * @throws {InvalidParamsError} naming the field
 */
export function checkParams(plugin: PluginDescriptor, method: string, params: unknown): void {
  const check = paramValidators(plugin).get(method);
  if (check === undefined) return;
  const problem = check(params === undefined ? null : params);
  if (problem !== undefined) throw new InvalidParamsError(plugin.name, method, problem);
}

/**
 * The `$/configure` params of a plugin, or `undefined` when there is nothing to send (no
 * config, no result or chunk schema: the handshake then stays as it was). The config is
 * checked against the manifest's `config.schema` first; messages name the field and never
 * show a value (config holds secrets). Config without a schema is sent unchecked, with a
 * warning.
 *
 * @throws {PluginConfigError} when the config fails the schema
 */
export function configureParams(
  plugin: PluginDescriptor,
  config: Config,
): ConfigureParams | undefined {
  const { manifest } = plugin;
  const given = config.plugins[plugin.name]?.config;
  const schema = manifest.config.schema;
  let value = given;
  if (schema !== undefined) {
    // A schema without config checks `{}`: a plugin whose settings are all optional needs no
    // `config:` section.
    value = given === undefined || given === null ? {} : given;
    const problem = compileSchema(schema, {
      root: `plugins.${plugin.name}.config`,
      redact: true,
    })(value);
    if (problem !== undefined) {
      throw new PluginConfigError(
        plugin.name,
        `${problem}; fix it in the host config (the manifest's config.schema says what it takes)`,
      );
    }
  } else if (given !== undefined) {
    log.warning(
      "plugin {plugin}: plugins.{plugin}.config is sent unchecked: its manifest declares no " +
        "config.schema",
      { plugin: plugin.name },
    );
  }
  const pick = (key: "result" | "chunk") =>
    Object.fromEntries(
      Object.entries(manifest.methods).flatMap(([m, spec]) =>
        spec[key] === undefined ? [] : [[m, spec[key]]]
      ),
    );
  const results = pick("result");
  const chunks = pick("chunk");
  const out = {
    ...(value === undefined ? {} : { config: value }),
    ...(Object.keys(results).length > 0 ? { results } : {}),
    ...(Object.keys(chunks).length > 0 ? { chunks } : {}),
  };
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Why a plugin's config would be refused at start, or `undefined` (`config check`, `inspect`). */
export function configProblem(plugin: PluginDescriptor, config: Config): string | undefined {
  try {
    configureParams(plugin, config);
    return undefined;
  } catch (e) {
    if (e instanceof PluginConfigError) return e.details.problem as string;
    throw e;
  }
}
