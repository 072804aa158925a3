import { isAbsolute, join, normalize, resolve } from "node:path";
import { isInside } from "../manifest/mod.ts";

/** The manifest placeholder for "a path inside the plugin's data folder". */
export const DATA_DIR_ARG = "${DATA_DIR}/*";

/**
 * Why a `*` argument is refused, if it is: a leading `-` (an option), `+` (`vim +cmd`,
 * `less +cmd`) or `@` (a response file of options for gcc, javac, ...), or a `:` (`host:path`
 * makes rsync, scp or tar reach another machine).
 */
export function wildcardProblem(arg: string): string | undefined {
  if (/^[-+@]/.test(arg)) return `it starts with "${arg[0]}"`;
  if (arg.includes(":")) return `it contains ":"`;
  return undefined;
}

export async function realPathOfExisting(path: string): Promise<string> {
  // The longest existing prefix, symlinks resolved, plus the rest as written.
  let head = path;
  const rest: string[] = [];
  for (;;) {
    try {
      return join(await Deno.realPath(head), ...rest.reverse());
    } catch {
      const parent = resolve(head, "..");
      if (parent === head) return path;
      rest.push(head.slice(parent.length + (parent.endsWith("/") ? 0 : 1)));
      head = parent;
    }
  }
}

export function shortArg(a: string): string {
  return a.length > 200 ? `${a.slice(0, 200)}...(${a.length} chars)` : a;
}

/** A command line for messages and logs, cut to a readable size. */
export function describe(command: string, args: readonly string[]): string {
  const shown = args.slice(0, 16).map((a) => JSON.stringify(shortArg(a)));
  if (args.length > 16) shown.push(`...(${args.length} arguments)`);
  return [JSON.stringify(shortArg(command)), ...shown].join(" ");
}

/**
 * The argv for `args` under one grant's `pattern`, or why they do not fit it: literal
 * arguments must be equal, `*` is one word that is not an option, and `${DATA_DIR}/*` becomes
 * the absolute path it names inside `dataDir` (symlinks resolved, escapes refused).
 */
export async function fitArgs(
  pattern: readonly string[],
  args: readonly string[],
  dataDir: string,
): Promise<string[] | string> {
  if (pattern.length !== args.length) {
    return `${pattern.length} argument(s) expected, ${args.length} given`;
  }
  const out: string[] = [];
  for (const [i, p] of pattern.entries()) {
    const arg = args[i]!;
    if (p === "*") {
      const problem = wildcardProblem(arg);
      if (problem !== undefined) return `argument ${i + 1} ("*") is refused: ${problem}`;
      out.push(arg);
    } else if (p === DATA_DIR_ARG) {
      const path = await dataPath(arg, dataDir);
      if (path === undefined) {
        return `argument ${i + 1} (${DATA_DIR_ARG}) is not a path inside the data folder`;
      }
      out.push(path);
    } else if (p !== arg) {
      return `argument ${i + 1} must be ${JSON.stringify(p)}`;
    } else out.push(arg);
  }
  return out;
}

/** `arg` as an absolute path inside `dataDir` (symlinks resolved), or undefined. */
export async function dataPath(arg: string, dataDir: string): Promise<string | undefined> {
  if (arg === "" || arg.includes("\0")) return undefined;
  const root = await Deno.realPath(dataDir).catch(() => resolve(dataDir));
  const path = normalize(isAbsolute(arg) ? arg : join(root, arg));
  const real = await realPathOfExisting(path);
  if (!isInside(path, root) && !isInside(path, resolve(dataDir))) return undefined;
  return isInside(real, root) ? real : undefined;
}
