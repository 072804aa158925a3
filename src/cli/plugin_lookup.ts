import { basename } from "node:path";
import type { Config, LoadedConfig } from "../config/mod.ts";
import { type HostRuntime, prepareRuntime, sandboxContext } from "../host/mod.ts";
import { discoverPlugins, type Discovery, type PluginDescriptor } from "../manifest/mod.ts";
import { PluginNotFoundError } from "../runtime/mod.ts";
import {
  checkModuleGraph,
  type CompiledSandbox,
  compileSandbox,
  type SandboxContext,
} from "../sandbox/mod.ts";
import { VERSION } from "../version.ts";

/**
 * The discovered plugin called `name`. A folder of that name whose manifest is invalid throws
 * its manifest error; otherwise a `PluginNotFoundError` lists the names there are.
 */
export function findPlugin(discovery: Discovery, name: string): PluginDescriptor {
  const plugin = discovery.plugins.find((p) => p.name === name);
  if (plugin !== undefined) return plugin;
  const bad = discovery.invalid.find((i) => basename(i.dir) === name);
  if (bad) throw bad.error;
  throw new PluginNotFoundError(name, undefined, discovery.plugins.map((p) => p.name));
}

/**
 * The plugin a `plugins <command> <name>` works on, discovered in the config's plugin folder,
 * and the runtime the host would spawn it with.
 */
export async function lookUpPlugin(
  loaded: LoadedConfig,
  name: string,
): Promise<{ readonly plugin: PluginDescriptor; readonly runtime: HostRuntime }> {
  const discovery = await discoverPlugins(loaded.config.dirs.plugins, { hostVersion: VERSION });
  const plugin = findPlugin(discovery, name);
  return { plugin, runtime: await prepareRuntime(loaded.config) };
}

/** The plugin's sandbox as the host would compile it now, and the context it was compiled in. */
export function compileNow(
  loaded: LoadedConfig,
  found: { readonly plugin: PluginDescriptor; readonly runtime: HostRuntime },
): { readonly context: SandboxContext; readonly compiled: CompiledSandbox } {
  const context = sandboxContext(loaded.config, loaded.file, found.plugin, found.runtime);
  return { context, compiled: compileSandbox(found.plugin, context) };
}

/** The module graph's local files (the SDK's included), checked exactly as before a spawn. */
export async function graphFiles(
  config: Config,
  configFile: string | undefined,
  plugin: PluginDescriptor,
  runtime: HostRuntime,
): Promise<readonly string[]> {
  const { denoCacheDir } = sandboxContext(config, configFile, plugin, runtime);
  await Deno.mkdir(denoCacheDir, { recursive: true });
  const graph = await checkModuleGraph(plugin, {
    denoBin: runtime.denoBin,
    importMapPath: runtime.importMapPath,
    allowed: runtime.sdkFiles,
    denoDir: denoCacheDir,
  });
  return graph.files;
}
