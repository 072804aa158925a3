/**
 * The sandbox: the permission compiler that turns a plugin's manifest and the host config
 * into the exact `deno run` flags and environment of its process, and the checks Deno's flags
 * cannot do by themselves.
 *
 * - {@linkcode compileSandbox}: capabilities -> argv + env, with refusals and warnings.
 * - {@linkcode checkProcessGrants}: process grants, their commands identified by the file.
 * - {@linkcode checkGrantSymlinks}: granted folders must hold no symlink leading outside.
 * - {@linkcode checkModuleGraph}: static imports bypass `--allow-read`, so the module graph
 *   must stay inside the plugin folder and the SDK.
 * - {@linkcode explainSandbox}: the text of `plugsconc plugins inspect`.
 *
 * @example
 * ```ts
 * import { checkGrantSymlinks, checkModuleGraph, compileSandbox, SandboxError } from "./mod.ts";
 *
 * const compiled = compileSandbox(plugin, ctx);
 * const refusals = [...compiled.refusals, ...(await checkGrantSymlinks(compiled))];
 * if (refusals.length > 0) throw SandboxError.grantRefused(plugin, refusals);
 * await checkModuleGraph(plugin, { importMapPath: ctx.importMapPath, denoDir, allowed: sdk });
 * const child = new Deno.Command(Deno.execPath(), {
 *   args: [...compiled.argv],
 *   env: compiled.env,
 *   clearEnv: true,
 * }).spawn();
 * ```
 * @module
 */
export { checkGrantSymlinks, type CheckSymlinksOptions } from "./check_symlinks.ts";
export {
  type CommandIdentity,
  identifyCommand,
  type IdentifyOptions,
  PSEUDO_DIRS,
  swappableBy,
} from "./command_identity.ts";
export { assertSafeArgv, BASE_FLAGS, compileSandbox } from "./compile_sandbox.ts";
export { withSocketGrants } from "./socket_grants.ts";
export { explainSandbox } from "./explain.ts";
export {
  checkModuleGraph,
  type GraphModule,
  type ModuleGraph,
  type ModuleGraphOptions,
  sdkModuleFiles,
} from "./module_graph.ts";
export {
  type OutsideModule,
  SandboxError,
  type SandboxErrorCode,
  type SandboxErrorOptions,
  throwIfRefused,
} from "./sandbox_error.ts";
export { LAUNCHER_NAMES, launcherName } from "./launcher_names.ts";
export { checkProcessGrants } from "./process_rules.ts";
export type {
  CompiledSandbox,
  Refusal,
  ResolvedCommand,
  ResolvedFsGrant,
  SandboxContext,
} from "./types.ts";
export { describeWidening, type WidenedGrant, widenedGrants } from "./widened_grants.ts";
