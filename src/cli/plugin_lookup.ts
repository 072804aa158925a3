import { basename } from "node:path";
import type { Config } from "../config/mod.ts";
import { type HostRuntime, sandboxContext } from "../host/mod.ts";
import type { Discovery, PluginDescriptor } from "../manifest/mod.ts";
import { PluginNotFoundError } from "../runtime/mod.ts";
import { checkModuleGraph } from "../sandbox/mod.ts";

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
