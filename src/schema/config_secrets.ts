/**
 * Masking of plugin config for display (`plugins inspect`, `config check`). Every function
 * here fails closed: whatever it cannot make sense of (a schema it cannot follow, a value
 * nested deeper than the validator follows, an error of any kind) is shown as `***`, never
 * as it is.
 *
 * @module
 */
import { checkSchema, compileSchema } from "./json_schema.ts";
import { isObject, resolveRef, SCHEMA_LIMITS } from "./_schema_util.ts";

/** What a secret is shown as. */
export const MASK = "***";

/** A config path (keys and indexes from the root), as `LoadedConfig.fromEnv` lists them. */
export type ValuePath = readonly PropertyKey[];

/** Options of {@linkcode maskConfig}. */
export interface MaskConfigOptions {
  /**
   * The manifest's `config.schema`. Default `undefined`: no schema (or no readable manifest),
   * so every leaf is masked.
   */
  readonly schema?: unknown;
  /** Paths of values that came from `${VAR}`. Default `[]`. */
  readonly fromEnv?: readonly ValuePath[];
  /** Where `value` sits in the paths of `fromEnv`, e.g. `["plugins", name, "config"]`. Default `[]`. */
  readonly at?: ValuePath;
}

/**
 * A plugin's config as it may be shown. Only a config that passes a supported schema shows
 * values, with its secrets (the values from `${VAR}`, the fields the schema marks `writeOnly`)
 * as `***`. Without a schema, with a schema outside the supported subset, or when the config
 * fails its schema, every leaf is `***` and only the keys (and array lengths) remain: the
 * schema cannot say where the secrets of a config of the wrong shape are.
 *
 * @example
 * ```ts
 * const schema = { type: "object", properties: { token: { type: "string", writeOnly: true } } };
 * maskConfig({ user: "a", token: "t" }, { schema }); // { user: "a", token: "***" }
 * maskConfig({ user: "a", token: 1 }, { schema }); // { user: "***", token: "***" }
 * ```
 */
export function maskConfig(value: unknown, options: MaskConfigOptions = {}): unknown {
  if (value === undefined) return undefined;
  const { schema } = options;
  try {
    if (schema === undefined || checkSchema(schema) !== undefined) return maskLeaves(value);
    // As the host checks it before a start: a missing (null) config is checked as `{}`.
    const problem = compileSchema(schema, { redact: true })(value === null ? {} : value);
    if (problem !== undefined) return maskLeaves(value);
    const at = options.at ?? [];
    const fromEnv = (options.fromEnv ?? [])
      .filter((p) => p.length >= at.length && at.every((k, i) => p[i] === k))
      .map((p) => p.slice(at.length));
    return maskWriteOnly(maskPaths(value, fromEnv), schema);
  } catch {
    return maskLeaves(value);
  }
}

/** The deepest a value is copied by {@linkcode maskLeaves}; anything below is one `***`. */
const MAX_LEAF_DEPTH = 256;

/**
 * A copy of `value` with every leaf (string, number, boolean, null) as `***`: objects keep
 * their keys, arrays their length. Never throws.
 *
 * @example
 * ```ts
 * maskLeaves({ a: "x", b: [1, { c: true }] }); // { a: "***", b: ["***", { c: "***" }] }
 * ```
 */
export function maskLeaves(value: unknown): unknown {
  return leaves(value, 0);
}

function leaves(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== "object" || depth >= MAX_LEAF_DEPTH) return MASK;
  if (Array.isArray(value)) return value.map((v) => leaves(v, depth + 1));
  // fromEntries defines each key, so a key "__proto__" stays a key.
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, leaves(v, depth + 1)]));
}

/**
 * Subschemas visited at most while masking one value (a schema whose `anyOf` branches refer
 * back to it could make the walk exponential); past it, the whole value is `***`.
 */
const MAX_VISITS = 100_000;

/** Thrown to stop a walk past {@linkcode MAX_VISITS}. */
class TooComplex extends Error {}

interface Walk {
  readonly defs: Record<string, unknown> | undefined;
  /** `$ref`s followed at once, counted as the validator counts them. */
  refs: number;
  visits: number;
}

/**
 * A copy of `value` with every field its schema marks `writeOnly: true` replaced by `***`
 * (anywhere: under `properties`, `additionalProperties`, `items`, `prefixItems`, local `$ref`s,
 * and in any branch of `anyOf`/`oneOf`/`allOf`, which masks when one branch says so).
 * `$ref`s resolve exactly as the validator resolves them; a `$ref` that resolves to nothing,
 * or is nested deeper than the validator follows ({@linkcode SCHEMA_LIMITS.maxRefDepth}),
 * masks the value under it whole. Never throws: on any error the whole value is `***`.
 *
 * @example
 * ```ts
 * maskWriteOnly({ user: "a", token: "t" }, { properties: { token: { writeOnly: true } } });
 * // { user: "a", token: "***" }
 * ```
 */
export function maskWriteOnly(value: unknown, schema: unknown): unknown {
  const defs = isObject(schema) && isObject(schema.$defs) ? schema.$defs : undefined;
  try {
    return mask(value, schema, { defs, refs: 0, visits: 0 });
  } catch {
    // TooComplex, or a stack overflow on a value the YAML limits did not bound.
    return MASK;
  }
}

/** A copy of `value` with the value at each path (keys and indexes from its root) as `***`. */
export function maskPaths(value: unknown, paths: readonly ValuePath[]): unknown {
  if (paths.length === 0) return value;
  if (paths.some((p) => p.length === 0)) return MASK;
  const copy = structuredClone(value);
  for (const path of paths) {
    let node: unknown = copy;
    for (const key of path.slice(0, -1)) {
      node = isContainer(node) ? (node as Record<PropertyKey, unknown>)[key] : undefined;
    }
    const last = path[path.length - 1]!;
    if (isContainer(node) && last in node) (node as Record<PropertyKey, unknown>)[last] = MASK;
  }
  return copy;
}

function mask(value: unknown, schema: unknown, walk: Walk): unknown {
  if (++walk.visits > MAX_VISITS) throw new TooComplex();
  if (!isObject(schema)) return value;
  if (schema.writeOnly === true) return MASK;
  let out = value;
  if (schema.$ref !== undefined) {
    const target = resolveRef(walk.defs, schema.$ref);
    // The validator fails a value this deep, or a $ref it cannot resolve: show nothing of it.
    if (target === undefined || walk.refs >= SCHEMA_LIMITS.maxRefDepth) return MASK;
    walk.refs++;
    try {
      out = mask(out, target, walk);
    } finally {
      walk.refs--;
    }
    if (out === MASK) return MASK;
  }
  for (const key of ["anyOf", "oneOf", "allOf"] as const) {
    const branches = schema[key];
    if (!Array.isArray(branches)) continue;
    for (const b of branches) {
      out = mask(out, b, walk);
      if (out === MASK) return MASK;
    }
  }
  if (isObject(out)) {
    const props = isObject(schema.properties) ? schema.properties : {};
    const extra = schema.additionalProperties;
    let copy: Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(out)) {
      const sub = Object.hasOwn(props, k) ? props[k] : extra;
      const m = mask(v, sub, walk);
      if (m !== v) (copy ??= { ...out })[k] = m;
    }
    return copy ?? out;
  }
  if (Array.isArray(out)) {
    const prefix = Array.isArray(schema.prefixItems) ? schema.prefixItems : [];
    const masked: unknown[] = out.map((v, i) =>
      mask(v, i < prefix.length ? prefix[i] : schema.items, walk)
    );
    return masked.some((v, i) => v !== out[i]) ? masked : out;
  }
  return out;
}

function isContainer(v: unknown): v is object {
  return v !== null && typeof v === "object";
}
