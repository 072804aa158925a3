import {
  Document,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
} from "yaml";
import { ConfigError } from "./config_error.ts";

/** Limits applied to every YAML file plugsconc reads. */
export interface YamlLimits {
  /** Largest file in bytes. Default 1 MiB. */
  readonly maxBytes?: number;
  /** Most alias dereferences allowed (alias-bomb protection). Default 100. */
  readonly maxAliasCount?: number;
  /** Deepest nesting of mappings/sequences allowed. Default 64. */
  readonly maxDepth?: number;
}

/** A parsed YAML file that can locate any YAML path for error messages. */
export interface YamlSource {
  readonly file: string;
  readonly value: unknown;
  /**
   * 1-based `{ line, column }` of the node at `path`, or of its nearest existing ancestor;
   * with `key: true` and a mapping key last in `path`, of the key rather than its value.
   */
  locate(
    path: readonly PropertyKey[],
    options?: { key?: boolean },
  ): { line: number; column: number };
  /** Whether `path` exists in the document. */
  has(path: readonly PropertyKey[]): boolean;
}

export const DEFAULT_YAML_LIMITS: Required<YamlLimits> = {
  maxBytes: 1024 * 1024,
  maxAliasCount: 100,
  maxDepth: 64,
};

/** Formats a path as `a.b[0].c`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

/**
 * Reads a file with a size limit checked before the content is read.
 * Throws `ConfigError` (`CONFIG_NOT_FOUND`, `CONFIG_READ`, `CONFIG_TOO_LARGE`).
 */
export async function readLimited(file: string, maxBytes: number, kind = "file"): Promise<string> {
  let handle: Deno.FsFile;
  try {
    handle = await Deno.open(file, { read: true });
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new ConfigError("CONFIG_NOT_FOUND", `${file}: ${kind} not found`, [], { cause });
    }
    throw new ConfigError("CONFIG_READ", `${file}: cannot read ${kind}: ${String(cause)}`, [], {
      cause,
    });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile) {
      throw new ConfigError("CONFIG_READ", `${file}: ${kind} is not a regular file`);
    }
    if (info.size > maxBytes) {
      throw new ConfigError(
        "CONFIG_TOO_LARGE",
        `${file}: ${kind} is ${info.size} bytes, larger than the limit of ${maxBytes} bytes; ` +
          `it was not parsed`,
      );
    }
    // Read at most maxBytes + 1 so a file growing after stat() is still caught.
    const buf = new Uint8Array(maxBytes + 1);
    let n = 0;
    while (n < buf.length) {
      const r = await handle.read(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    if (n > maxBytes) {
      throw new ConfigError(
        "CONFIG_TOO_LARGE",
        `${file}: ${kind} is larger than the limit of ${maxBytes} bytes; it was not parsed`,
      );
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(0, n));
    } catch (cause) {
      throw new ConfigError("CONFIG_READ", `${file}: ${kind} is not valid UTF-8`, [], { cause });
    }
  } finally {
    handle.close();
  }
}

/**
 * Finds the first place where mappings/sequences nest deeper than `maxDepth`, scanning the
 * text linearly (the parser itself recurses, so it must never see such input).
 * Over-estimates in odd cases (brackets inside multi-line quoted strings), never under.
 */
export function findExcessiveNesting(
  text: string,
  maxDepth: number,
): { line: number; column: number; depth: number } | undefined {
  const indents: number[] = [];
  let flow = 0;
  let line = 1;
  let blockScalarIndent = -1;
  for (const raw of text.split("\n")) {
    const indent = raw.length - raw.trimStart().length;
    const body = raw.trim();
    if (blockScalarIndent >= 0) {
      if (body === "" || indent > blockScalarIndent) {
        line++;
        continue;
      }
      blockScalarIndent = -1;
    }
    if (body === "" || body.startsWith("#")) {
      line++;
      continue;
    }
    if (flow === 0) {
      while (indents.length > 0 && indents[indents.length - 1]! >= indent) indents.pop();
      indents.push(indent);
    }
    let depth = indents.length + flow;
    let quote = "";
    for (let i = indent; i < raw.length; i++) {
      const ch = raw[i]!;
      if (quote !== "") {
        if (ch === quote) quote = "";
        else if (ch === "\\" && quote === '"') i++;
        continue;
      }
      if (ch === '"' || ch === "'") quote = ch;
      else if (ch === "#" && (i === 0 || raw[i - 1] === " ")) break;
      else if (ch === "[" || ch === "{") {
        flow++;
        depth++;
      } else if (ch === "]" || ch === "}") flow = Math.max(0, flow - 1);
      else if ((ch === "-" || ch === "?") && raw[i + 1] === " " && flow === 0) depth++;
      if (depth > maxDepth) return { line, column: i + 1, depth };
    }
    if (flow === 0 && /[|>][-+0-9]*\s*(#.*)?$/.test(body) && /(^|[:\-]\s)[|>]/.test(body)) {
      blockScalarIndent = indent;
    }
    line++;
  }
  return undefined;
}

/**
 * Parses YAML text with alias and depth limits into a {@link YamlSource}.
 * Throws `ConfigError` with code `CONFIG_YAML` and `file:line:col` for syntax errors,
 * duplicate keys, alias bombs and excessive nesting.
 */
export function parseYamlSource(
  text: string,
  file: string,
  limits: YamlLimits = {},
  kind = "file",
): YamlSource {
  const { maxAliasCount, maxDepth } = { ...DEFAULT_YAML_LIMITS, ...limits };
  const deep = findExcessiveNesting(text, maxDepth);
  if (deep !== undefined) {
    throw new ConfigError("CONFIG_YAML", `${file}: ${kind} nests too deeply`, [{
      file,
      path: "",
      line: deep.line,
      column: deep.column,
      found: `more than ${maxDepth} levels`,
      expected: `at most ${maxDepth} levels of nesting`,
      message: "nesting too deep; refusing to parse",
    }]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      "CONFIG_YAML",
      `${file}: ${kind} is not valid YAML`,
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return {
          file,
          path: "",
          line: pos.line,
          column: pos.col,
          message: e.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, ""),
        };
      }),
    );
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount });
  } catch (cause) {
    throw new ConfigError("CONFIG_YAML", `${file}: ${kind} is refused`, [{
      file,
      path: "",
      line: 1,
      column: 1,
      found: "aliases that expand too far",
      expected: `at most ${maxAliasCount} alias expansions`,
      message: "alias expansion limit exceeded (a YAML alias bomb?)",
    }], { cause });
  }
  if (isCyclic(value)) {
    throw new ConfigError("CONFIG_YAML", `${file}: ${kind} is refused`, [{
      file,
      path: "",
      line: 1,
      column: 1,
      found: "an alias inside the node it names",
      expected: "aliases to nodes that do not contain them",
      message: "an alias refers to a node that contains it: the value would be endless",
    }]);
  }
  return {
    file,
    value,
    locate(path, options = {}) {
      const node = nodeAt(doc, path, options.key ?? false);
      const offset = node?.range?.[0] ?? 0;
      const pos = lineCounter.linePos(offset);
      return { line: pos.line, column: pos.col };
    },
    has(path) {
      return doc.hasIn(path as unknown[]);
    },
  };
}

/** The deepest existing node along `path`; for a map key, the key node itself. */
function nodeAt(doc: Document, path: readonly PropertyKey[], key: boolean): Node | undefined {
  let node: unknown = doc.contents;
  let found: Node | undefined = doc.contents ?? undefined;
  for (const [i, step] of path.entries()) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === step);
      if (pair === undefined) break;
      const last = i === path.length - 1;
      found = (last && key ? null : pair.value as Node | null) ?? (pair.key as Node);
      node = pair.value;
    } else if (isSeq(node) && typeof step === "number") {
      const item = node.items[step];
      if (item === undefined) break;
      found = item as Node;
      node = item;
    } else break;
  }
  return found;
}

/** Whether `value` contains itself (a YAML alias inside the node it names). Iterative. */
function isCyclic(value: unknown): boolean {
  if (value === null || typeof value !== "object") return false;
  // Depth-first with the path of open nodes: a node met again while open closes a cycle.
  const open = new Set<object>();
  const todo: [object, boolean][] = [[value, false]];
  while (todo.length > 0) {
    const [node, leaving] = todo.pop()!;
    if (leaving) {
      open.delete(node);
      continue;
    }
    if (open.has(node)) return true;
    open.add(node);
    todo.push([node, true]);
    for (const child of Object.values(node)) {
      if (child === null || typeof child !== "object") continue;
      if (open.has(child)) return true;
      todo.push([child, false]);
    }
  }
  return false;
}
