/**
 * A small, interpretive validator of a documented subset of JSON Schema draft 2020-12, for
 * method params, results, chunks and plugin config. The plugin SDK loads it inside the
 * sandbox, so it imports nothing.
 *
 * The subset (anything else is refused by {@linkcode checkSchema}, so nothing in a schema is
 * silently left unchecked):
 *
 * - assertions: `type` (a name or an array of names; `integer` included), `enum`, `const`,
 *   `properties`, `required`, `additionalProperties` (boolean or schema), `minProperties`,
 *   `maxProperties`, `items` (schema), `prefixItems`, `minItems`, `maxItems`, `minLength`,
 *   `maxLength` (in code points), `pattern` (a JavaScript regular expression without the `u`
 *   flag, run by V8's linear-time engine; not anchored), `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers),
 *   `multipleOf`, `anyOf`, `oneOf`, `allOf`, `not`, `$ref` (only `#/$defs/<name>`) and `$defs`;
 * - annotations, ignored by validation: `$schema` (only the 2020-12 URI), `$comment`, `title`,
 *   `description`, `default`, `examples`, `deprecated`, `readOnly`, `writeOnly` (marks a config
 *   field secret), `format` (not asserted, as the 2020-12 default says).
 *
 * Limits: a schema nests at most {@linkcode SCHEMA_LIMITS.maxDepth} levels and has at most
 * {@linkcode SCHEMA_LIMITS.maxNodes} subschemas; an `enum` lists at most 1,000 values; a
 * `pattern` is at most 1,000 characters; a value is checked at most 128 `$ref`s deep.
 *
 * @module
 */

import { checkNode, Problem } from "./_schema_check.ts";
import { checkCost } from "./_schema_cost.ts";
import { type CompileContext, compileNode, TooComplex } from "./_schema_compile.ts";
import { formatSchemaPath, formatValuePath, isObject, SCHEMA_LIMITS } from "./_schema_util.ts";

export {
  formatSchemaPath,
  formatValuePath,
  LINEAR_REGEXP,
  LINEAR_REGEXP_FLAG,
  SCHEMA_LIMITS,
  typeOf,
} from "./_schema_util.ts";

/** Where a schema breaks the supported subset, and how. */
export interface SchemaProblem {
  /** Dotted path inside the schema, `""` for the root (e.g. `properties.a`). */
  readonly path: string;
  /** The same path as keys and indexes. */
  readonly at: readonly (string | number)[];
  /** What is wrong, e.g. `unsupported keyword "if"`. */
  readonly message: string;
}

/** Options of {@linkcode compileSchema}. */
export interface CompileOptions {
  /** The name of the value's root in messages. Default `"value"`. */
  readonly root?: string;
  /**
   * Never show the value in messages, only its type: no value, no length (of a string, an
   * array, an object), no count of matching `oneOf` alternatives. For config, whose values
   * may be secrets (`writeOnly`, or from `${VAR}`, which the validator cannot tell apart), so
   * every value is treated as one. Default `false`.
   */
  readonly redact?: boolean;
  /**
   * Run `pattern`s only with V8's linear-time regexp engine (`LINEAR_REGEXP`), and throw a
   * RangeError saying how to enable it when it is off: for what the host checks (callers'
   * params, config), where a backtracking pattern would let a short string stall it. `false`
   * (the SDK, checking its own results) falls back to the backtracking engine. Default `true`.
   */
  readonly linearPatterns?: boolean;
}

/** Checks one value: `undefined` when valid, else a message naming the failing path. */
export type Validator = (value: unknown) => string | undefined;
/**
 * Why `schema` is outside the supported subset, or `undefined` when it is inside: an unknown
 * keyword, a bad keyword value, a `pattern` that does not compile, a `$ref` to a missing
 * definition, or a schema beyond the limits.
 *
 * @example
 * ```ts
 * schemaProblem({ type: "object", if: {} })?.message; // 'unsupported keyword "if"'
 * ```
 */
export function schemaProblem(schema: unknown): SchemaProblem | undefined {
  return inspect(schema).problem;
}

/** The problem of `schema` (if any) and its number of subschemas. */
function inspect(schema: unknown): { problem?: SchemaProblem; nodes: number } {
  const state = { nodes: 0, defs: undefined as Record<string, unknown> | undefined };
  if (isObject(schema) && isObject(schema.$defs)) state.defs = schema.$defs;
  try {
    checkNode(schema, [], 0, state, true);
    checkCost(schema, state.defs);
    return { nodes: state.nodes };
  } catch (e) {
    if (e instanceof Problem) {
      return {
        problem: { path: formatSchemaPath(e.path), at: e.path, message: e.message },
        nodes: state.nodes,
      };
    }
    throw e;
  }
}

/**
 * Like {@linkcode schemaProblem}, as one message (`properties.a: unsupported keyword "if"`);
 * `undefined` when the schema is supported.
 */
export function checkSchema(schema: unknown): string | undefined {
  const p = schemaProblem(schema);
  if (p === undefined) return undefined;
  return p.path === "" ? p.message : `${p.path}: ${p.message}`;
}

/**
 * Compiles `schema` (once) into a validator. Messages name the failing path and what was
 * expected and found: `params.count: expected integer, got "3"` (values shown short).
 *
 * @throws {RangeError} when the schema is outside the subset ({@linkcode checkSchema})
 * @example
 * ```ts
 * const check = compileSchema({ type: "object", required: ["n"] }, { root: "params" });
 * check({}); // 'params.n: required property is missing'
 * ```
 */
export function compileSchema(schema: unknown, options: CompileOptions = {}): Validator {
  const { problem: p, nodes: schemaNodes } = inspect(schema);
  if (p !== undefined) {
    throw new RangeError(
      `unsupported JSON Schema: ${p.path === "" ? "" : `${p.path}: `}${p.message}`,
    );
  }
  const perValue = Math.max(SCHEMA_LIMITS.stepsPerValue, schemaNodes);
  const redact = options.redact ?? false;
  const ctx: CompileContext = {
    redact,
    linearPatterns: options.linearPatterns ?? true,
    defs: isObject(schema) && isObject(schema.$defs) ? schema.$defs : {},
    compiled: new Map(),
    refDepth: 0,
    stepsLeft: 0,
    charsLeft: 0,
    memo: new WeakMap(),
  };
  const check = compileNode(schema, ctx);
  const root = options.root ?? "value";
  return (value) => {
    const scanned = scan(value);
    if ("path" in scanned) {
      return `${root}${
        formatValuePath(scanned.path)
      }: expected a finite number, got ${scanned.what}`;
    }
    const { nodes: size, chars } = scanned;
    ctx.charsLeft = SCHEMA_LIMITS.baseChars + SCHEMA_LIMITS.scansPerChar * chars;
    ctx.refDepth = 0;
    const budget = SCHEMA_LIMITS.baseSteps + perValue * size;
    ctx.stepsLeft = budget;
    ctx.memo = new WeakMap();
    let failure;
    try {
      failure = check(value);
    } catch (e) {
      if (!(e instanceof TooComplex)) throw e;
      if (e.message !== "") return `${root}: ${e.message}`;
      return `${root}: too complex to check against its schema` +
        (redact ? "" : ` (more than ${budget} subschema checks for ${size} values)`) +
        "; simplify the value or the schema";
    }
    return failure === undefined
      ? undefined
      : `${root}${formatValuePath(failure.path)}: ${failure.message}`;
  };
}

/**
 * The number of nodes of `value` (objects, arrays, scalars) and of characters of its strings;
 * or the path of a number that is not finite (`1e999` in JSON parses to Infinity, which would
 * be sent on as null: the value checked would not be the value sent). Iterative: a value may
 * nest deeper than the stack.
 */
function scan(
  value: unknown,
): { nodes: number; chars: number } | { path: (string | number)[]; what: string } {
  if (typeof value === "number" && !Number.isFinite(value)) return { path: [], what: `${value}` };
  if (typeof value === "string") return { nodes: 1, chars: value.length };
  if (value === null || typeof value !== "object") return { nodes: 1, chars: 0 };
  // Containers only, each with its parent's index and its key (for the path of a bad number).
  const frames: { v: object; parent: number; key: string | number }[] = [
    { v: value, parent: -1, key: "" },
  ];
  const todo = [0];
  let nodes = 1;
  let chars = 0;
  const pathTo = (i: number, last: string | number) => {
    const path = [last];
    for (let f = frames[i]!; f.parent >= 0; f = frames[f.parent]!) path.unshift(f.key);
    return path;
  };
  while (todo.length > 0) {
    const i = todo.pop()!;
    const v = frames[i]!.v as Record<string | number, unknown>;
    const keys: (string | number)[] = Array.isArray(v) ? v.map((_, k) => k) : Object.keys(v);
    for (const k of keys) {
      const x = v[k];
      nodes++;
      if (typeof x === "string") chars += x.length;
      else if (typeof x === "number" && !Number.isFinite(x)) {
        return { path: pathTo(i, k), what: `${x}` };
      } else if (x !== null && typeof x === "object") {
        frames.push({ v: x, parent: i, key: k });
        todo.push(frames.length - 1);
      }
    }
  }
  return { nodes, chars };
}
