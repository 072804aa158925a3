/** Helpers shared by the JSON Schema checker and compiler. @module */

/** The limits `checkSchema` enforces. */
export const SCHEMA_LIMITS = {
  /** Nesting of subschemas. */
  maxDepth: 32,
  /** Subschemas in one schema, `$defs` included. */
  maxNodes: 10_000,
  /** Values of one `enum`. */
  maxEnum: 1_000,
  /** Characters of one `pattern`. */
  maxPattern: 1_000,
  /** `$ref`s followed at once while checking a value (recursive schemas). */
  maxRefDepth: 128,
  /**
   * Subschema evaluations while checking one value: this, plus `stepsPerValue` for each node
   * (object, array, scalar) of the value. Past it the value is refused as too complex, so an
   * `anyOf` that tries every branch of every level (2^depth) cannot stall the host.
   */
  baseSteps: 10_000,
  /** See {@linkcode SCHEMA_LIMITS.baseSteps}; at least the schema's number of subschemas. */
  stepsPerValue: 100,
  /**
   * Characters that string checks (lengths, patterns) may read while checking one value: this,
   * plus `scansPerChar` times the characters of the value's strings. A long string checked by
   * many branches is refused as too complex rather than read a thousand times.
   */
  baseChars: 1_000_000,
  /** See {@linkcode SCHEMA_LIMITS.baseChars}. */
  scansPerChar: 16,
  /** Subschemas that may apply to one value node at one level (`checkCost`). */
  maxChecksPerValue: 1_000,
  /** Nesting of a `const` or `enum` value. */
  maxValueDepth: 64,
} as const;

/** The V8 flag that enables the linear-time regexp engine (`new RegExp(p, "l")`). */
export const LINEAR_REGEXP_FLAG = "--enable-experimental-regexp-engine";

/**
 * Whether this process runs V8 with {@linkcode LINEAR_REGEXP_FLAG} (the deno tasks set it in
 * `DENO_V8_FLAGS`): the host checks callers' params against manifest patterns only with it, as
 * a backtracking engine can take exponential time on a short string (`^(a+)+$`).
 */
export const LINEAR_REGEXP: boolean = (() => {
  try {
    new RegExp("", "l");
    return true;
  } catch {
    return false;
  }
})();

/** A local reference: `#/$defs/<name>`. */
export const REF = /^#\/\$defs\/([^/~]+)$/;

/**
 * The definition name of a local `$ref` (`#/$defs/<name>`), taken exactly as written (no
 * percent- or pointer-decoding), or `undefined` when `ref` is not one. The compiler and the
 * secret masker resolve through this (and the checker by the same {@linkcode REF} and an
 * own-property lookup), so they agree on every name.
 */
export function refName(ref: unknown): string | undefined {
  return typeof ref === "string" ? REF.exec(ref)?.[1] : undefined;
}

/** The definition `ref` names in `defs` (own properties only), or `undefined`. */
export function resolveRef(defs: Record<string, unknown> | undefined, ref: unknown): unknown {
  const name = refName(ref);
  return name !== undefined && defs !== undefined && Object.hasOwn(defs, name)
    ? defs[name]
    : undefined;
}

/** A JSON object (not null, not an array). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Whether `v` is of JSON Schema type `name`. */
export function hasType(v: unknown, name: string): boolean {
  switch (name) {
    case "null":
      return v === null;
    case "boolean":
      return typeof v === "boolean";
    case "object":
      return isObject(v);
    case "array":
      return Array.isArray(v);
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    case "integer":
      return Number.isInteger(v);
    case "string":
      return typeof v === "string";
  }
  return false;
}

/** Whether `v` is a multiple of `m`, allowing for rounding error. */
export function isMultiple(v: number, m: number): boolean {
  if (Number.isInteger(v) && Number.isInteger(m)) return v % m === 0;
  // 0.3 % 0.1 is 0.09999999999999998: accept a remainder within rounding error of 0 or of m,
  // relative to m (never to the quotient, which would let big values through).
  const r = Math.abs(v % m);
  return Math.min(r, Math.abs(m) - r) <= 1e-9 * Math.abs(m);
}

/** The length of `s` in code points. */
export function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** JSON equality (bounded depth). */
export function deepEqual(a: unknown, b: unknown, depth = 0): boolean {
  if (a === b) return true;
  // `a` is the schema's (`const`, `enum`), which `checkSchema` keeps within `maxValueDepth`:
  // the recursion ends with it, whatever `b` is.
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i], depth + 1));
  }
  const ka = Object.keys(a);
  const ob = b as Record<string, unknown>;
  if (ka.length !== Object.keys(ob).length) return false;
  const oa = a as Record<string, unknown>;
  return ka.every((k) => Object.hasOwn(ob, k) && deepEqual(oa[k], ob[k], depth + 1));
}

/** The JSON type of a value, as messages name it (`undefined`: nothing was given). */
export function typeOf(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

const PREVIEW = 40;

/** A short rendering of a value: JSON cut to 40 characters. */
export function preview(v: unknown): string {
  if (v === undefined) return "nothing";
  let text: string;
  try {
    text = JSON.stringify(v) ?? typeOf(v);
  } catch {
    text = typeOf(v);
  }
  return clip(text, PREVIEW);
}

/** A value as a schema problem shows it. */
export function describe(v: unknown): string {
  return preview(v);
}

/** `s` cut to `n` characters with an ellipsis. */
export function clip(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `.user.age`, `[3]`, `["a b"]`: a value path as messages show it. */
export function formatValuePath(path: readonly (string | number)[]): string {
  return path.map((k) =>
    typeof k === "number" ? `[${k}]` : IDENT.test(k) ? `.${k}` : `[${clip(JSON.stringify(k), 60)}]`
  ).join("");
}

/** `properties.a`, `anyOf[1]`: a path inside a schema (as a YAML path of the manifest). */
export function formatSchemaPath(path: readonly (string | number)[]): string {
  return formatValuePath(path).replace(/^\./, "");
}

/** Whether `v` nests deeper than `max` levels of arrays and objects (iterative). */
export function nestsDeeperThan(v: unknown, max: number): boolean {
  const todo: [unknown, number][] = [[v, 0]];
  while (todo.length > 0) {
    const [x, d] = todo.pop()!;
    if (x === null || typeof x !== "object") continue;
    if (d >= max) return true;
    for (const y of Object.values(x)) todo.push([y, d + 1]);
  }
  return false;
}
