/** The static cost bound of a schema: checks per value node at one level. @module */
import { isObject, refName, SCHEMA_LIMITS } from "./_schema_util.ts";
import { Problem } from "./_schema_check.ts";

/**
 * Throws {@linkcode Problem} when more than {@linkcode SCHEMA_LIMITS.maxChecksPerValue}
 * subschemas can apply to one node of a value without descending into its children (through
 * `allOf`, `anyOf`, `oneOf`, `not` and `$ref` at one level: `d0: anyOf [$ref d1, $ref d1]`,
 * `d1: ...` doubles at each step), or when a `$ref` loop never reaches a property or an item
 * (`d: anyOf [$ref d]`). With the validator's reuse of what it found for each object and array,
 * this keeps every check linear in the value's size.
 */
export function checkCost(schema: unknown, defs: Record<string, unknown> | undefined): void {
  const known = new Map<string, number>();
  const cost = (s: unknown, open: readonly string[]): number => {
    if (!isObject(s)) return 1;
    let c = 1;
    for (const key of ["allOf", "anyOf", "oneOf"] as const) {
      const branches = s[key];
      if (Array.isArray(branches)) { for (const b of branches) c += cost(b, open); }
    }
    if (s.not !== undefined) c += cost(s.not, open);
    const name = refName(s.$ref);
    if (name !== undefined && defs !== undefined && Object.hasOwn(defs, name)) {
      if (open.includes(name)) {
        throw new Problem(
          ["$defs", name],
          `$ref loop ${[...open.slice(open.indexOf(name)), name].join(" -> ")} never reaches a ` +
            "property or an item: it checks the same value forever",
        );
      }
      let d = known.get(name);
      if (d === undefined) known.set(name, d = cost(defs[name], [...open, name]));
      c += d;
    }
    // Capped, so that a doubling chain stays a small number while it is added up.
    return Math.min(c, SCHEMA_LIMITS.maxChecksPerValue + 1);
  };
  const total = cost(schema, []);
  for (const name of Object.keys(defs ?? {})) {
    if (!known.has(name)) known.set(name, cost(defs![name], [name]));
  }
  const worst = Math.max(total, ...known.values());
  if (worst > SCHEMA_LIMITS.maxChecksPerValue) {
    throw new Problem(
      [],
      `up to more than ${SCHEMA_LIMITS.maxChecksPerValue} subschemas may apply to one value ` +
        "through allOf/anyOf/oneOf/not and $refs at one level; split the schema or share fewer " +
        "$refs between branches",
    );
  }
}
