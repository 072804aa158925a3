import { PlugsconcError } from "../errors/mod.ts";

/** One located problem in a YAML file: where it is and what was wrong. */
export interface YamlIssue {
  /** The file, as given by the caller. */
  readonly file: string;
  /** Dotted YAML path, e.g. `logging.file.max_size_mb` or `plugins.cat.env[0]`; `""` for the root. */
  readonly path: string;
  /** 1-based line, or 0 when the problem concerns the whole file. */
  readonly line: number;
  /** 1-based column, or 0 when the problem concerns the whole file. */
  readonly column: number;
  /** What was found there, as a short string. */
  readonly found?: string;
  /** What was expected there. */
  readonly expected?: string;
  /** The reason in words. */
  readonly message: string;
}

/** `file:line:col: path: message (found X, expected Y)` */
export function formatIssue(issue: YamlIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file;
  const path = issue.path === "" ? "" : ` ${issue.path}:`;
  const extra = [
    issue.found === undefined ? undefined : `found ${issue.found}`,
    issue.expected === undefined ? undefined : `expected ${issue.expected}`,
  ].filter((s) => s !== undefined);
  return `${where}:${path} ${issue.message}${extra.length > 0 ? ` (${extra.join(", ")})` : ""}`;
}

/**
 * A configuration file could not be read or is invalid.
 *
 * Codes: `CONFIG_NOT_FOUND`, `CONFIG_READ`, `CONFIG_TOO_LARGE`, `CONFIG_YAML` (syntax, alias
 * or depth limits), `CONFIG_ENV` (bad `${VAR}`), `CONFIG_INVALID` (schema).
 * `issues` lists every located problem; the message has one line per issue.
 */
export class ConfigError extends PlugsconcError {
  /** Every located problem, in file order. */
  readonly issues: readonly YamlIssue[];

  /**
   * @param code stable code
   * @param summary first line of the message
   * @param issues located problems (may be empty)
   * @param options cause
   */
  constructor(
    code: string,
    summary: string,
    issues: readonly YamlIssue[] = [],
    options: { cause?: unknown } = {},
  ) {
    const lines = issues.map((i) => `  ${formatIssue(i)}`);
    super(code, [summary, ...lines].join("\n"), {
      cause: options.cause,
      details: { issues: issues.map((i) => ({ ...i })) },
    });
    this.issues = Object.freeze([...issues]);
  }
}
