import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Config } from "../config/mod.ts";
import type { PluginDescriptor } from "../manifest/mod.ts";
import { findDenoBinary, findSetpriv, findSetsid } from "../runtime/mod.ts";
import { type SandboxContext, sdkModuleFiles } from "../sandbox/mod.ts";
import { materializeSdk, writeIfChanged } from "./sdk_files.ts";

/** What every plugin spawn needs from the host: binaries, the SDK import map, SDK files. */
export interface HostRuntime {
  /** The deno binary plugins run with. */
  readonly denoBin: string;
  /** setpriv, when present (Linux), for `--pdeathsig KILL`. */
  readonly setpriv: string | undefined;
  /** setsid, when present (Linux): each child of the process service gets its own group. */
  readonly setsid?: string | undefined;
  /** The import map mapping only `plugsconc/sdk`. */
  readonly importMapPath: string;
  /** Local files of the SDK's module graph (allowed in plugin module graphs). */
  readonly sdkFiles: ReadonlySet<string>;
}

/** Writes the import map (and, in a compiled binary, the SDK files) below `dirs.data`. */
export async function prepareRuntime(config: Config): Promise<HostRuntime> {
  const runtimeDir = join(config.dirs.data, "runtime");
  await Deno.mkdir(runtimeDir, { recursive: true });
  const sdkEntry = await materializeSdk(runtimeDir);
  const importMapPath = join(runtimeDir, "import_map.json");
  await writeIfChanged(
    importMapPath,
    JSON.stringify({ imports: { "plugsconc/sdk": pathToFileURL(sdkEntry).href } }, null, 2) + "\n",
  );
  const denoBin = findDenoBinary(config.runtime.deno);
  const sdkFiles = await sdkModuleFiles(sdkEntry, {
    denoBin,
    importMapPath,
    denoDir: join(config.dirs.data, "cache", "_sdk"),
  });
  return { denoBin, setpriv: findSetpriv(), setsid: findSetsid(), importMapPath, sdkFiles };
}

/** The sandbox context of one plugin: its private data folder and Deno cache below `dirs.data`. */
export function sandboxContext(
  config: Config,
  configFile: string | undefined,
  plugin: PluginDescriptor,
  runtime: Pick<HostRuntime, "importMapPath">,
): SandboxContext & { dataDir: string; denoCacheDir: string } {
  return {
    config,
    configFile,
    importMapPath: runtime.importMapPath,
    dataDir: join(config.dirs.data, "plugins", plugin.name),
    denoCacheDir: join(config.dirs.data, "cache", plugin.name),
    hostDenoDir: Deno.env.get("DENO_DIR"),
  };
}
