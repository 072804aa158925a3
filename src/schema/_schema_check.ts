/** Checks that a schema stays within the supported subset. @module */
import {
  describe,
  isObject,
  LINEAR_REGEXP,
  nestsDeeperThan,
  REF,
  SCHEMA_LIMITS,
} from "./_schema_util.ts";

const TYPES = new Set(["null", "boolean", "object", "array", "number", "integer", "string"]);
const ANNOTATIONS = new Set([
  "$schema",
  "$comment",
  "title",
  "description",
  "default",
  "examples",
  "deprecated",
  "readOnly",
  "writeOnly",
  "format",
]);
const DRAFT = "https://json-schema.org/draft/2020-12/schema";

/** Thrown (and caught) at the first problem found. */
export class Problem extends Error {
  constructor(readonly path: readonly (string | number)[], message: string) {
    super(message);
  }
}

/** What a check counts and knows while it walks a schema. */
export interface CheckState {
  nodes: number;
  defs: Record<string, unknown> | undefined;
}

/** Throws {@linkcode Problem} at the first part of `s` outside the subset. */
export function checkNode(
  s: unknown,
  path: (string | number)[],
  depth: number,
  state: CheckState,
  root = false,
): void {
  const fail = (message: string, at: (string | number)[] = path): never => {
    throw new Problem(at, message);
  };
  if (++state.nodes > SCHEMA_LIMITS.maxNodes) {
    fail(`the schema has more than ${SCHEMA_LIMITS.maxNodes} subschemas`);
  }
  if (depth > SCHEMA_LIMITS.maxDepth) {
    fail(`the schema nests deeper than ${SCHEMA_LIMITS.maxDepth} levels`);
  }
  if (typeof s === "boolean") return;
  if (!isObject(s)) fail(`a schema is an object or a boolean, got ${describe(s)}`);
  const o = s as Record<string, unknown>;
  const sub = (v: unknown, ...keys: (string | number)[]) =>
    checkNode(v, [...path, ...keys], depth + 1, state);
  const at = (key: string) => [...path, key];
  const nonNegInt = (key: string) => {
    const v = o[key];
    if (!Number.isSafeInteger(v) || (v as number) < 0) {
      fail(`${key} must be a non-negative integer, got ${describe(v)}`, at(key));
    }
  };
  const schemaArray = (key: string) => {
    const v = o[key];
    if (!Array.isArray(v) || v.length === 0) {
      fail(`${key} must be a non-empty array of schemas`, at(key));
    }
    (v as unknown[]).forEach((item, i) => sub(item, key, i));
  };
  for (const key of Object.keys(o)) {
    const v = o[key];
    switch (key) {
      case "type": {
        const names = Array.isArray(v) ? v : [v];
        if (names.length === 0) fail("type must not be an empty array", at(key));
        for (const n of names) {
          if (typeof n !== "string" || !TYPES.has(n)) {
            fail(
              `unknown type ${describe(n)}; use one of ${[...TYPES].join(", ")}`,
              at(key),
            );
          }
        }
        if (new Set(names).size !== names.length) fail("type lists a name twice", at(key));
        break;
      }
      case "enum":
        if (!Array.isArray(v) || v.length === 0) {
          fail("enum must be a non-empty array", at(key));
        }
        if ((v as unknown[]).length > SCHEMA_LIMITS.maxEnum) {
          fail(`enum lists more than ${SCHEMA_LIMITS.maxEnum} values`, at(key));
        }
        if (nestsDeeperThan(v, SCHEMA_LIMITS.maxValueDepth + 1)) {
          fail(`enum values nest deeper than ${SCHEMA_LIMITS.maxValueDepth} levels`, at(key));
        }
        break;
      case "const":
        if (nestsDeeperThan(v, SCHEMA_LIMITS.maxValueDepth)) {
          fail(`const nests deeper than ${SCHEMA_LIMITS.maxValueDepth} levels`, at(key));
        }
        break;
      case "properties":
        if (!isObject(v)) fail("properties must be an object of schemas", at(key));
        for (const [name, p] of Object.entries(v as Record<string, unknown>)) {
          sub(p, key, name);
        }
        break;
      case "required":
        if (!Array.isArray(v) || v.some((n) => typeof n !== "string")) {
          fail("required must be an array of property names", at(key));
        }
        break;
      case "additionalProperties":
      case "items":
      case "not":
        sub(v, key);
        break;
      case "prefixItems":
      case "anyOf":
      case "oneOf":
      case "allOf":
        schemaArray(key);
        break;
      case "minProperties":
      case "maxProperties":
      case "minItems":
      case "maxItems":
      case "minLength":
      case "maxLength":
        nonNegInt(key);
        break;
      case "minimum":
      case "maximum":
      case "exclusiveMinimum":
      case "exclusiveMaximum":
        if (typeof v !== "number" || !Number.isFinite(v)) {
          fail(`${key} must be a number, got ${describe(v)}`, at(key));
        }
        break;
      case "multipleOf":
        if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
          fail(`multipleOf must be a number greater than 0, got ${describe(v)}`, at(key));
        }
        break;
      case "pattern":
        if (typeof v !== "string") fail("pattern must be a string", at(key));
        if ((v as string).length > SCHEMA_LIMITS.maxPattern) {
          fail(`pattern is longer than ${SCHEMA_LIMITS.maxPattern} characters`, at(key));
        }
        // No `u` flag (V8's linear-time engine does not take it): refuse what means another
        // thing without it rather than check something else than the author meant.
        if (/\\[pP]\{|\\u\{|[\uD800-\uDFFF]/.test(v as string)) {
          fail(
            "pattern uses \\p{...}, \\u{...} or a character beyond U+FFFF, which need the " +
              "u flag; patterns run without it (write the characters or ranges out)",
            at(key),
          );
        }
        try {
          new RegExp(v as string);
        } catch (e) {
          fail(`pattern is not a valid regular expression: ${(e as Error).message}`, at(key));
        }
        if (LINEAR_REGEXP) {
          try {
            new RegExp(v as string, "l");
          } catch {
            fail(
              "pattern cannot run in linear time (backreferences and lookaround are not " +
                "supported)",
              at(key),
            );
          }
        }
        break;
      case "$defs":
        if (!root) fail("$defs is only supported at the root of a schema", at(key));
        if (!isObject(v)) fail("$defs must be an object of schemas", at(key));
        for (const [name, d] of Object.entries(v as Record<string, unknown>)) {
          sub(d, key, name);
        }
        break;
      case "$ref": {
        const m = typeof v === "string" ? REF.exec(v) : null;
        if (m === null) {
          fail(`only local references "#/$defs/<name>" are supported, got ${describe(v)}`, at(key));
        }
        if (state.defs === undefined || !Object.hasOwn(state.defs, m![1]!)) {
          fail(`$ref ${describe(v)}: no such definition in the root's $defs`, at(key));
        }
        break;
      }
      case "$schema":
        if (v !== DRAFT) fail(`only draft 2020-12 (${DRAFT}) is supported`, at(key));
        break;
      case "readOnly":
      case "writeOnly":
      case "deprecated":
        if (typeof v !== "boolean") fail(`${key} must be a boolean`, at(key));
        break;
      case "format":
      case "title":
      case "description":
      case "$comment":
        if (typeof v !== "string") fail(`${key} must be a string`, at(key));
        break;
      default:
        if (!ANNOTATIONS.has(key)) fail(`unsupported keyword ${JSON.stringify(key)}`, at(key));
    }
  }
}
