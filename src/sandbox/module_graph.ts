import { isAbsolute } from "node:path";
import { fileURLToPath } from "node:url";
import { isInside, type PluginDescriptor } from "../manifest/mod.ts";
import { type OutsideModule, SandboxError } from "./sandbox_error.ts";

/** Options of {@linkcode checkModuleGraph} and {@linkcode sdkModuleFiles}. */
export interface ModuleGraphOptions {
  /** The deno binary that runs `deno info`. Default: `Deno.execPath()`. */
  denoBin?: string;
  /** The import map the plugin runs with (maps only `plugsconc/sdk`); absolute. */
  importMapPath: string;
  /** `DENO_DIR` of the `deno info` process (a cache folder the host owns); absolute. */
  denoDir: string;
  /**
   * Files or folders outside the plugin folder whose modules are allowed: the SDK's own graph
   * ({@linkcode sdkModuleFiles}). Default: none.
   */
  allowed?: Iterable<string>;
  /** Aborts `deno info`. */
  signal?: AbortSignal;
  /** Kills `deno info` after this long. Default: 30 000 ms. */
  timeoutMs?: number;
}

/** One module of a checked graph. */
export interface GraphModule {
  /** As `deno info` names it, e.g. `file:///srv/plugins/cat/main.ts` or `node:path`. */
  readonly specifier: string;
  /** `esm`, `asserted`, `external` (text/bytes imports), `node`, ... */
  readonly kind: string | undefined;
  /** Symlink-free path on disk, for `file:` modules. */
  readonly path: string | undefined;
}

/** A plugin's module graph that passed {@linkcode checkModuleGraph}. */
export interface ModuleGraph {
  /** Every module, in `deno info` order. */
  readonly modules: readonly GraphModule[];
  /** Symlink-free paths of every local file in the graph, sorted (for checksums). */
  readonly files: readonly string[];
}

interface InfoDependency {
  specifier?: string;
  code?: { specifier?: string; error?: string };
  type?: { specifier?: string; error?: string };
}

interface InfoModule {
  specifier: string;
  kind?: string;
  local?: string | null;
  error?: string;
  dependencies?: InfoDependency[];
}

async function realPathOr(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return path;
  }
}

const STDERR_LIMIT = 4000;

/** Runs `deno info --json` on `entry` with a clean environment and returns its modules. */
async function denoInfo(
  entry: string,
  options: ModuleGraphOptions,
  plugin: string | undefined,
): Promise<InfoModule[]> {
  for (const key of ["importMapPath", "denoDir"] as const) {
    if (!isAbsolute(options[key])) {
      throw new RangeError(`${key} must be an absolute path: ${options[key]}`);
    }
  }
  const timeoutMs = options.timeoutMs ?? 30_000;
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive: ${timeoutMs}`);
  options.signal?.throwIfAborted();
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal === undefined
    ? timeout
    : AbortSignal.any([options.signal, timeout]);
  const fail = (message: string, cause?: unknown): never => {
    throw new SandboxError("MODULE_GRAPH", message, { plugin, cause, details: { entry } });
  };
  const command = new Deno.Command(options.denoBin ?? Deno.execPath(), {
    // The same resolution flags as `deno run` (minus --cached-only, which info lacks): no
    // deno.json, no lock file, no remote or npm fetches; remote modules become errors.
    args: [
      "info",
      "--json",
      "--no-config",
      "--no-lock",
      "--no-remote",
      "--no-npm",
      `--import-map=${options.importMapPath}`,
      entry,
    ],
    clearEnv: true,
    env: { DENO_DIR: options.denoDir, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal,
  });
  let output: Deno.CommandOutput;
  try {
    output = await command.output();
  } catch (cause) {
    if (options.signal?.aborted) throw options.signal.reason;
    return fail(`cannot run deno info for ${entry}: ${String(cause)}`, cause);
  }
  if (options.signal?.aborted) throw options.signal.reason;
  if (timeout.aborted) {
    return fail(`deno info for ${entry} did not finish within ${timeoutMs} ms`);
  }
  const stderr = new TextDecoder().decode(output.stderr).trim().slice(0, STDERR_LIMIT);
  if (!output.success) {
    return fail(`deno info failed for ${entry} (exit code ${output.code}):\n${stderr}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(output.stdout));
  } catch (cause) {
    return fail(`deno info printed invalid JSON for ${entry}: ${String(cause)}\n${stderr}`, cause);
  }
  const modules = (parsed as { modules?: unknown } | null)?.modules;
  if (
    !Array.isArray(modules) ||
    !modules.every((m) => typeof m === "object" && m !== null && typeof m.specifier === "string")
  ) {
    return fail(`deno info printed an unexpected JSON shape for ${entry}`);
  }
  return modules as InfoModule[];
}

/** Why a non-`file:` module is refused, or `undefined` when it is allowed. */
function schemeReason(specifier: string): string | undefined {
  // node: built-ins are runtime APIs under the same permission checks as Deno.*, not code read
  // from disk (require() of files through node:module is checked against --allow-read too).
  if (specifier.startsWith("node:")) return undefined;
  if (specifier.startsWith("npm:")) {
    return "npm packages are not available to plugins (--no-npm); vendor the code into the " +
      "plugin folder";
  }
  if (specifier.startsWith("jsr:")) {
    return "JSR packages are not available to plugins; vendor the code into the plugin folder";
  }
  if (/^https?:/.test(specifier)) {
    return "remote modules are not loaded (--no-remote); vendor the code into the plugin folder";
  }
  if (specifier.startsWith("data:")) {
    // Harmless to run (eval-like), but never needed: keeping every module a file of the plugin
    // keeps the graph reviewable and checksummable file by file.
    return "data: URL modules are refused; put the code in a file of the plugin folder";
  }
  return "unsupported module scheme; modules must be files of the plugin folder";
}

function importersOf(modules: readonly InfoModule[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const m of modules) {
    for (const dep of m.dependencies ?? []) {
      for (const target of new Set([dep.code?.specifier, dep.type?.specifier])) {
        if (target === undefined) continue;
        const list = map.get(target) ?? [];
        if (!list.includes(m.specifier)) list.push(m.specifier);
        map.set(target, list);
      }
    }
  }
  return map;
}

function dependencyErrors(modules: readonly InfoModule[]): string[] {
  const errors: string[] = [];
  for (const m of modules) {
    if (m.error !== undefined) errors.push(`${m.specifier}: ${m.error}`);
    for (const dep of m.dependencies ?? []) {
      for (const part of [dep.code, dep.type]) {
        if (part?.error !== undefined) {
          errors.push(`${m.specifier}: import ${JSON.stringify(dep.specifier)}: ${part.error}`);
        }
      }
    }
  }
  return errors;
}

/**
 * Refuses a plugin whose module graph leaves its folder. Deno loads static imports (and
 * `require()` calls it can see) without `--allow-read`, so `import s from "/etc/passwd" with
 * { type: "text" }` would otherwise read any file. Runs `deno info --json` with the plugin's
 * import map and checks every module, symlinks resolved: it must be a file inside the plugin
 * folder or in `options.allowed` (the SDK), or a `node:` built-in. `npm:`, `jsr:`, `http(s):`
 * and `data:` modules are refused.
 *
 * @example
 * ```ts
 * const sdk = await sdkModuleFiles(sdkEntry, { importMapPath, denoDir });
 * const graph = await checkModuleGraph(plugin, { importMapPath, denoDir, allowed: sdk });
 * console.log(graph.files); // every local file, e.g. for a checksum
 * ```
 * @throws {SandboxError} `MODULE_OUTSIDE_PLUGIN` naming each module and its importers;
 *   `MODULE_GRAPH` when `deno info` fails or a module cannot be loaded
 */
export async function checkModuleGraph(
  plugin: PluginDescriptor,
  options: ModuleGraphOptions,
): Promise<ModuleGraph> {
  const infos = await denoInfo(plugin.entrypoint, options, plugin.name);
  const allowed = await Promise.all([...(options.allowed ?? [])].map(realPathOr));
  const importers = importersOf(infos);
  const modules: GraphModule[] = [];
  const outside: OutsideModule[] = [];
  for (const m of infos) {
    const importedBy = importers.get(m.specifier) ?? [];
    if (!m.specifier.startsWith("file:")) {
      const reason = schemeReason(m.specifier);
      if (reason !== undefined) outside.push({ specifier: m.specifier, importedBy, reason });
      modules.push({ specifier: m.specifier, kind: m.kind, path: undefined });
      continue;
    }
    const given = m.local ?? fileURLToPath(m.specifier);
    const path = await realPathOr(given);
    if (!isInside(path, plugin.dir) && !allowed.some((a) => isInside(path, a))) {
      const viaLink = isInside(given, plugin.dir)
        ? " (through a symlink in the plugin folder)"
        : "";
      outside.push({
        specifier: m.specifier,
        path,
        importedBy,
        reason: `a file outside the plugin folder and the SDK${viaLink}`,
      });
    }
    modules.push({ specifier: m.specifier, kind: m.kind, path });
  }
  if (outside.length > 0) throw SandboxError.moduleOutsidePlugin(plugin, outside);
  const errors = dependencyErrors(infos);
  if (errors.length > 0) {
    throw new SandboxError(
      "MODULE_GRAPH",
      [
        `plugin ${plugin.name}: its module graph cannot be loaded:`,
        ...errors.map((e) => `  ${e}`),
        `  fix: correct the imports (only relative files of the plugin and "plugsconc/sdk" ` +
        "resolve), then run `plugsconc plugins verify`",
      ].join("\n"),
      { plugin: plugin.name, details: { errors } },
    );
  }
  const files = modules.flatMap((m) => m.path === undefined ? [] : [m.path]);
  return Object.freeze({
    modules: Object.freeze(modules),
    files: Object.freeze([...new Set(files)].sort()),
  });
}

/**
 * The local files of the SDK's own module graph (symlinks resolved), to pass as
 * `checkModuleGraph(..., { allowed })` so that a plugin may import the SDK and what it imports.
 *
 * @param sdkEntry absolute path of the SDK entry file (what `plugsconc/sdk` maps to)
 * @param options the same import map and DENO_DIR as the plugins
 * @throws {SandboxError} `MODULE_GRAPH` if the graph fails or is not self-contained
 */
export async function sdkModuleFiles(
  sdkEntry: string,
  options: Omit<ModuleGraphOptions, "allowed">,
): Promise<Set<string>> {
  const infos = await denoInfo(sdkEntry, options, undefined);
  const errors = dependencyErrors(infos);
  for (const m of infos) {
    const reason = m.specifier.startsWith("file:") ? undefined : schemeReason(m.specifier);
    if (reason !== undefined) errors.push(`${m.specifier}: ${reason}`);
  }
  if (errors.length > 0) {
    throw new SandboxError(
      "MODULE_GRAPH",
      [
        `the SDK ${sdkEntry} must be a self-contained set of local files:`,
        ...errors.map((e) => `  ${e}`),
      ].join("\n"),
      { details: { entry: sdkEntry, errors } },
    );
  }
  const files = new Set<string>();
  for (const m of infos) {
    if (m.specifier.startsWith("file:")) {
      files.add(await realPathOr(m.local ?? fileURLToPath(m.specifier)));
    }
  }
  return files;
}
