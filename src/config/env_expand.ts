import { ConfigError, type YamlIssue } from "./config_error.ts";
import { formatPath, type YamlSource } from "./yaml_source.ts";

/** Reads an environment variable; `undefined` when unset. */
export type EnvLookup = (name: string) => string | undefined;

/** The value after expansion, and the paths whose strings took a value from the environment. */
export interface Expanded {
  readonly value: unknown;
  /** Paths of strings that contain a value read from the environment (shown masked). */
  readonly fromEnv: readonly (readonly PropertyKey[])[];
}

const REF = /\$\$|\$\{([^}]*)\}?/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Expands `${VAR}` and `${VAR:-default}` in every string value (not in keys); `$${` is a
 * literal `${`. An unset variable without a default, an unclosed `${` or a bad name is an
 * error naming the file, path and line.
 */
export function expandEnv(source: YamlSource, env: EnvLookup): Expanded {
  const issues: YamlIssue[] = [];
  const fromEnv: PropertyKey[][] = [];

  function expandString(s: string, path: PropertyKey[]): string {
    if (!s.includes("$")) return s;
    let usedEnv = false;
    const out = s.replace(REF, (match, body: string | undefined) => {
      if (match === "$$") return "$";
      const fail = (message: string) => {
        issues.push({
          file: source.file,
          path: formatPath(path),
          ...source.locate(path),
          found: JSON.stringify(match),
          expected: "${NAME} or ${NAME:-default}",
          message,
        });
        return "";
      };
      if (!match.endsWith("}")) return fail("unclosed ${ in value");
      const sep = body!.indexOf(":-");
      const name = sep < 0 ? body! : body!.slice(0, sep);
      if (!NAME.test(name)) return fail(`invalid variable name ${JSON.stringify(name)}`);
      const v = env(name);
      if (v !== undefined && v !== "") {
        usedEnv = true;
        return v;
      }
      if (sep >= 0) return body!.slice(sep + 2);
      return fail(`environment variable ${name} is not set and has no default (\${${name}:-x})`);
    });
    if (usedEnv) fromEnv.push(path);
    return out;
  }

  function walk(v: unknown, path: PropertyKey[]): unknown {
    if (typeof v === "string") return expandString(v, path);
    if (Array.isArray(v)) return v.map((item, i) => walk(item, [...path, i]));
    if (v !== null && typeof v === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, item] of Object.entries(v)) out[k] = walk(item, [...path, k]);
      return out;
    }
    return v;
  }

  const value = walk(source.value, []);
  if (issues.length > 0) {
    throw new ConfigError("CONFIG_ENV", `${source.file}: bad environment reference`, issues);
  }
  return { value, fromEnv };
}
