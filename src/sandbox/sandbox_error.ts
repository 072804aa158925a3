import { PlugsconcError } from "../errors/mod.ts";
import type { Refusal } from "./types.ts";

/**
 * The stable codes of {@linkcode SandboxError}.
 *
 * - `GRANT_REFUSED`: the manifest asks for capabilities the host will not give (`refusals`).
 * - `MODULE_OUTSIDE_PLUGIN`: the module graph reaches files outside the plugin folder and the
 *   SDK, or non-file modules (`modules`).
 * - `MODULE_GRAPH`: `deno info` failed, or a module of the graph cannot be loaded.
 * - `SANDBOX_INVARIANT`: the compiler produced a forbidden `deno run` argument (a bug in
 *   plugsconc, never a manifest problem); the plugin must not start.
 */
export type SandboxErrorCode =
  | "GRANT_REFUSED"
  | "MODULE_OUTSIDE_PLUGIN"
  | "MODULE_GRAPH"
  | "SANDBOX_INVARIANT";

/** A module of a plugin's graph that is not allowed. */
export interface OutsideModule {
  /** The module as `deno info` names it (`file:///...`, `npm:...`, `https://...`). */
  readonly specifier: string;
  /** The file on disk, symlinks resolved, when it is one. */
  readonly path?: string;
  /** Specifiers of the modules that import it, when known. */
  readonly importedBy: readonly string[];
  /** Why it is not allowed. */
  readonly reason: string;
}

/** Options of the {@linkcode SandboxError} constructor. */
export interface SandboxErrorOptions {
  /** The plugin concerned. */
  plugin?: string;
  /** For `GRANT_REFUSED`. */
  refusals?: readonly Refusal[];
  /** For `MODULE_OUTSIDE_PLUGIN`. */
  modules?: readonly OutsideModule[];
  /** The underlying error. */
  cause?: unknown;
  /** More structured fields. */
  details?: Record<string, unknown>;
}

/**
 * The sandbox will not run a plugin: a grant is refused, its module graph leaves its folder,
 * or the graph could not be built.
 *
 * @example
 * ```ts
 * const compiled = compileSandbox(plugin, ctx);
 * if (compiled.refusals.length > 0) throw SandboxError.grantRefused(plugin, compiled.refusals);
 * ```
 */
export class SandboxError extends PlugsconcError {
  /** The stable code, narrowed to the sandbox codes. */
  declare readonly code: SandboxErrorCode;
  /** The plugin concerned, if known. */
  readonly plugin: string | undefined;
  /** Every refused grant (`GRANT_REFUSED`); empty otherwise. */
  readonly refusals: readonly Refusal[];
  /** Every refused module (`MODULE_OUTSIDE_PLUGIN`); empty otherwise. */
  readonly modules: readonly OutsideModule[];

  /**
   * @param code one of {@linkcode SandboxErrorCode}
   * @param message what failed, where, and what to do
   * @param options plugin, refusals, modules, cause, details
   */
  constructor(code: SandboxErrorCode, message: string, options: SandboxErrorOptions = {}) {
    const refusals = Object.freeze([...(options.refusals ?? [])]);
    const modules = Object.freeze([...(options.modules ?? [])]);
    super(code, message, {
      cause: options.cause,
      details: {
        ...options.details,
        ...(options.plugin === undefined ? {} : { plugin: options.plugin }),
        ...(refusals.length > 0 ? { refusals: refusals.map((r) => ({ ...r })) } : {}),
        ...(modules.length > 0 ? { modules: modules.map((m) => ({ ...m })) } : {}),
      },
    });
    this.plugin = options.plugin;
    this.refusals = refusals;
    this.modules = modules;
  }

  /**
   * A `GRANT_REFUSED` error whose message has one line per refusal: where in the manifest,
   * what was asked, why it is refused and what to do instead.
   *
   * @param plugin the plugin (name and manifest file) or its name
   * @param refusals the refusals of {@linkcode compileSandbox} or {@linkcode checkGrantSymlinks}
   */
  static grantRefused(
    plugin: { readonly name: string; readonly manifestFile?: string } | string,
    refusals: readonly Refusal[],
  ): SandboxError {
    const name = typeof plugin === "string" ? plugin : plugin.name;
    const file = typeof plugin === "string" ? undefined : plugin.manifestFile;
    const where = file === undefined ? "" : `${file}: `;
    const lines = refusals.map((r) => `  ${where}${r.at}: ${r.grant}: ${r.reason}`);
    const n = refusals.length;
    return new SandboxError(
      "GRANT_REFUSED",
      [
        `plugin ${name}: ${n} capabilit${n === 1 ? "y" : "ies"} refused; it will not start:`,
        ...lines,
      ].join("\n"),
      { plugin: name, refusals, details: file === undefined ? {} : { file } },
    );
  }

  /**
   * A `MODULE_OUTSIDE_PLUGIN` error listing each offending module and its importers.
   *
   * @param plugin the plugin (name and folder)
   * @param modules the modules refused
   */
  static moduleOutsidePlugin(
    plugin: { readonly name: string; readonly dir: string },
    modules: readonly OutsideModule[],
  ): SandboxError {
    const lines = modules.map((m) => {
      const by = m.importedBy.length > 0 ? ` (imported by ${m.importedBy.join(", ")})` : "";
      const path = m.path !== undefined && !m.specifier.endsWith(m.path) ? ` -> ${m.path}` : "";
      return `  ${m.specifier}${path}${by}: ${m.reason}`;
    });
    return new SandboxError(
      "MODULE_OUTSIDE_PLUGIN",
      [
        `plugin ${plugin.name}: its module graph leaves the plugin folder ${plugin.dir}; Deno ` +
        `loads static imports without --allow-read, so these are refused:`,
        ...lines,
        `  fix: keep every module inside the plugin folder, import the host SDK as ` +
        `"plugsconc/sdk", and read other files at run time through a capabilities.filesystem grant`,
      ].join("\n"),
      { plugin: plugin.name, modules, details: { dir: plugin.dir } },
    );
  }
}

/**
 * Throws `GRANT_REFUSED` when `compiled` has any refusal.
 *
 * @example
 * ```ts
 * throwIfRefused(compileSandbox(plugin, ctx)); // before spawning
 * ```
 * @throws {SandboxError} `GRANT_REFUSED`
 */
export function throwIfRefused(
  compiled: {
    readonly plugin: { readonly name: string; readonly manifestFile: string };
    readonly refusals: readonly Refusal[];
  },
): void {
  if (compiled.refusals.length > 0) {
    throw SandboxError.grantRefused(compiled.plugin, compiled.refusals);
  }
}
