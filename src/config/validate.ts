import { z } from "zod";
import { ConfigError, type YamlIssue } from "./config_error.ts";
import { formatPath, type YamlSource } from "./yaml_source.ts";

/** Walks a zod schema to the schema at `path` (through wrappers, objects, records, arrays). */
function schemaAt(schema: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let current: z.ZodType | undefined = unwrap(schema);
  for (const key of path) {
    if (current instanceof z.ZodObject) current = current.shape[String(key)] as z.ZodType;
    else if (current instanceof z.ZodRecord) current = current.valueType as z.ZodType;
    else if (current instanceof z.ZodArray) current = current.element as z.ZodType;
    else return undefined;
    current = current === undefined ? undefined : unwrap(current);
  }
  return current;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  for (let i = 0; i < 16; i++) {
    if (
      s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional ||
      s instanceof z.ZodNullable || s instanceof z.ZodReadonly
    ) {
      s = s.unwrap() as z.ZodType;
    } else if (s instanceof z.ZodPipe) {
      s = s.in as z.ZodType;
    } else break;
  }
  return s;
}

const SHORT_MESSAGES: Partial<Record<string, string>> = {
  invalid_type: "wrong type",
  invalid_value: "invalid value",
  too_small: "too small",
  too_big: "too large",
};

/** A short description of a value for error messages. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return `a list of ${value.length}`;
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  return `${typeof value} ${String(value)}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** Edit distance, for "did you mean" hints on unknown keys. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

function expectedFor(issue: z.core.$ZodIssue): string | undefined {
  switch (issue.code) {
    case "invalid_type":
      return issue.expected;
    case "invalid_value":
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "too_small":
      return `${issue.origin === "string" ? "length " : ""}${
        issue.inclusive === false ? ">" : ">="
      } ${String(issue.minimum)}`;
    case "too_big":
      return `${issue.origin === "string" ? "length " : ""}${
        issue.inclusive === false ? "<" : "<="
      } ${String(issue.maximum)}`;
    default:
      return undefined;
  }
}

/**
 * Validates `source.value` with `schema`; on failure throws `ConfigError(code)` whose issues
 * each carry file, YAML path, line:column, what was found and what was expected.
 */
export function validateSource<S extends z.ZodType>(
  schema: S,
  source: YamlSource,
  options: { code: string; kind: string; value?: unknown },
): z.output<S> {
  const value = options.value ?? source.value;
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issues: YamlIssue[] = [];
  for (const issue of result.error.issues) {
    const path = issue.path as PropertyKey[];
    if (issue.code === "unrecognized_keys") {
      const parent = schemaAt(schema, path);
      const known = parent instanceof z.ZodObject ? Object.keys(parent.shape) : [];
      for (const key of issue.keys) {
        const close = known.filter((k) => distance(k, key) <= 2);
        const pos = source.locate([...path, key], { key: true });
        issues.push({
          file: source.file,
          path: formatPath([...path, key]),
          ...pos,
          found: `unknown key ${JSON.stringify(key)}`,
          expected: known.length > 0 ? `one of: ${known.join(", ")}` : undefined,
          message: `unknown key${close.length > 0 ? ` (did you mean "${close[0]}"?)` : ""}`,
        });
      }
      continue;
    }
    const pos = source.locate(path);
    const found = valueAt(value, path);
    issues.push({
      file: source.file,
      path: formatPath(path),
      ...pos,
      found: describeValue(found),
      expected: expectedFor(issue),
      message: found === undefined && issue.code === "invalid_type"
        ? "required key is missing"
        : SHORT_MESSAGES[issue.code] ?? issue.message.replace(/^Invalid input: /, ""),
    });
  }
  issues.sort((a, b) => a.line - b.line || a.column - b.column);
  throw new ConfigError(options.code, `${source.file}: invalid ${options.kind}`, issues);
}
