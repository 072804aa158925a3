/** What a secret is shown as. */
export const MASK = "***";

/**
 * A copy of `value` with every field its schema marks `writeOnly: true` replaced by `***`
 * (anywhere: under `properties`, `additionalProperties`, `items`, `prefixItems`, local `$ref`s,
 * and in any branch of `anyOf`/`oneOf`/`allOf`, which masks when one branch says so).
 *
 * @example
 * ```ts
 * maskWriteOnly({ user: "a", token: "t" }, { properties: { token: { writeOnly: true } } });
 * // { user: "a", token: "***" }
 * ```
 */
export function maskWriteOnly(value: unknown, schema: unknown): unknown {
  const defs = isObject(schema) && isObject(schema.$defs) ? schema.$defs : {};
  return mask(value, schema, defs, 0);
}

/** A copy of `value` with the value at each path (keys and indexes from its root) as `***`. */
export function maskPaths(value: unknown, paths: readonly (readonly PropertyKey[])[]): unknown {
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

function mask(
  value: unknown,
  schema: unknown,
  defs: Record<string, unknown>,
  depth: number,
): unknown {
  if (!isObject(schema) || depth > 64) return value;
  if (schema.writeOnly === true) return MASK;
  let out = value;
  if (typeof schema.$ref === "string") {
    const target = defs[decodeURIComponent(schema.$ref.replace(/^#\/\$defs\//, ""))];
    out = mask(out, target, defs, depth + 1);
    if (out === MASK) return MASK;
  }
  for (const key of ["anyOf", "oneOf", "allOf"] as const) {
    const branches = schema[key];
    if (!Array.isArray(branches)) continue;
    for (const b of branches) {
      out = mask(out, b, defs, depth + 1);
      if (out === MASK) return MASK;
    }
  }
  if (isObject(out)) {
    const props = isObject(schema.properties) ? schema.properties : {};
    const extra = schema.additionalProperties;
    let copy: Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(out)) {
      const sub = Object.hasOwn(props, k) ? props[k] : extra;
      const m = mask(v, sub, defs, depth + 1);
      if (m !== v) (copy ??= { ...out })[k] = m;
    }
    return copy ?? out;
  }
  if (Array.isArray(out)) {
    const prefix = Array.isArray(schema.prefixItems) ? schema.prefixItems : [];
    const masked: unknown[] = out.map((v, i) =>
      mask(v, i < prefix.length ? prefix[i] : schema.items, defs, depth + 1)
    );
    return masked.some((v, i) => v !== out[i]) ? masked : out;
  }
  return out;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function isContainer(v: unknown): v is object {
  return v !== null && typeof v === "object";
}
