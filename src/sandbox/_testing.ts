/**
 * Test fixtures for the sandbox tests: a real host layout in a temp dir, real manifest files
 * read by `loadManifest`, and a config from `resolveConfig`. Not part of the public API.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { type Config, resolveConfig } from "../config/mod.ts";
import { loadManifest, type PluginDescriptor } from "../manifest/mod.ts";
import { compileSandbox } from "./compile_sandbox.ts";
import type { CompiledSandbox, SandboxContext } from "./types.ts";

/** A temp host: `<root>/config.yaml`, `plugins/`, `data/`, `sdk/`, `deno-dir/`. */
export interface TestHost extends AsyncDisposable {
  readonly root: string;
  readonly pluginsDir: string;
  readonly dataDir: string;
  readonly configFile: string;
  readonly importMapPath: string;
  readonly sdkEntry: string;
  readonly hostDenoDir: string;
  /** Writes `<root>/<rel>` (creating folders) and returns its absolute path. */
  write(rel: string, text: string): Promise<string>;
  /** Writes a plugin folder with `manifest.yaml` and `files`, and loads it. */
  plugin(manifest: ManifestInput, files?: Record<string, string>): Promise<PluginDescriptor>;
  /** A validated config rooted at `root` (dirs default to ./plugins and ./data). */
  config(input?: Record<string, unknown>): Config;
  /** A sandbox context for `plugin` with `config(input)`. */
  ctx(plugin: PluginDescriptor, input?: Record<string, unknown>): SandboxContext;
}

/** A manifest as an object; `plugin.name` defaults to `cat`. */
export interface ManifestInput {
  plugin?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Creates a host layout in a fresh temp dir (symlinks resolved), removed on dispose. */
export async function makeHost(): Promise<TestHost> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-sandbox-" }));
  const write = async (rel: string, text: string) => {
    const path = join(root, rel);
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeTextFile(path, text);
    return path;
  };
  const sdkEntry = await write("sdk/mod.ts", 'export { helper } from "./_helper.ts";\n');
  await write("sdk/_helper.ts", "export const helper = 42;\n");
  const importMapPath = await write(
    "sdk/import_map.json",
    JSON.stringify({ imports: { "plugsconc/sdk": sdkEntry } }),
  );
  const configFile = await write("config.yaml", "# test host\n");
  await Deno.mkdir(join(root, "plugins"), { recursive: true });
  await Deno.mkdir(join(root, "data"), { recursive: true });
  const host: TestHost = {
    root,
    pluginsDir: join(root, "plugins"),
    dataDir: join(root, "data"),
    configFile,
    importMapPath,
    sdkEntry,
    hostDenoDir: join(root, "deno-dir"),
    write,
    async plugin(manifest, files = {}) {
      const name = String(manifest.plugin?.name ?? "cat");
      const full = {
        ...manifest,
        plugin: { name, version: "1.0.0", entrypoint: "./main.ts", ...manifest.plugin },
      };
      // JSON is YAML: the real YAML loader and schema read it.
      await write(`plugins/${name}/manifest.yaml`, JSON.stringify(full, null, 2));
      const all = { "main.ts": "export {};\n", ...files };
      for (const [rel, text] of Object.entries(all)) await write(`plugins/${name}/${rel}`, text);
      return await loadManifest(join(root, "plugins", name));
    },
    config(input = {}) {
      return resolveConfig(input, { baseDir: root, env: () => undefined }).config;
    },
    ctx(plugin, input = {}) {
      return {
        config: host.config(input),
        configFile,
        importMapPath,
        dataDir: join(root, "data", "plugins", plugin.name),
        denoCacheDir: join(root, "data", "cache", plugin.name),
        hostDenoDir: join(root, "deno-dir"),
      };
    },
    async [Symbol.asyncDispose]() {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
  return host;
}

/** The --deny-net flag every sandbox carries. */
export const DENY_ALL =
  "--deny-net=0.0.0.0/8,100.100.100.200,127.0.0.0/8,169.254.0.0/16,[::1],[::]," +
  "[fd00:ec2::254]";

/** Compiles the sandbox of a test plugin with `manifest` and host `config`. */
export async function compile(
  host: TestHost,
  manifest: ManifestInput,
  config: Record<string, unknown> = {},
  files?: Record<string, string>,
): Promise<CompiledSandbox> {
  const plugin = await host.plugin(manifest, files);
  return compileSandbox(plugin, host.ctx(plugin, config));
}

/** The value of flag `name` in the argv, if present. */
export function flag(c: CompiledSandbox, name: string): string | undefined {
  const arg = c.argv.find((a) => a.startsWith(`${name}=`));
  return arg?.slice(name.length + 1);
}

/** A manifest with these filesystem grants. */
export function fsManifest(...grants: Record<string, unknown>[]): ManifestInput {
  return { capabilities: { filesystem: grants } };
}

/** A manifest with one egress rule. */
export function egress(hosts: string[], ports = [443], protocol = "tcp"): ManifestInput {
  return { capabilities: { network: { egress: [{ protocol, hosts, ports }] } } };
}
