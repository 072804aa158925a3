import { join } from "node:path";
import { getLogger } from "@logtape/logtape";
import { PlugsconcError } from "../errors/mod.ts";
import { orderCallTargets } from "./dependency_names.ts";
import { loadManifest, MANIFEST_FILE, type PluginDescriptor } from "./load_manifest.ts";
import { ManifestError } from "./manifest_error.ts";
import { satisfies } from "./semver.ts";

const log = getLogger(["plugsconc", "manifest"]);

/** A plugin folder that was skipped, and why. */
export interface InvalidPlugin {
  /** The plugin folder. */
  readonly dir: string;
  /** Why it was skipped (`ManifestError` for manifest problems). */
  readonly error: PlugsconcError;
}

/** What {@link discoverPlugins} found. */
export interface Discovery {
  /** Valid plugins, sorted by name. */
  readonly plugins: readonly PluginDescriptor[];
  /** Folders with a manifest that was refused. Never fatal. */
  readonly invalid: readonly InvalidPlugin[];
}

/**
 * Scans `pluginsDir`: each subfolder with a `manifest.yaml` is a candidate. An invalid one
 * is logged and listed in `invalid`, never fatal; plugins sharing a name are all refused.
 *
 * @param pluginsDir the folder of plugin folders (`dirs.plugins`)
 * @param options `hostVersion` checks `plugin.requires_host`
 */
export async function discoverPlugins(
  pluginsDir: string,
  options: { hostVersion?: string } = {},
): Promise<Discovery> {
  const candidates: string[] = [];
  try {
    for await (const entry of Deno.readDir(pluginsDir)) {
      if (entry.name.startsWith(".")) continue;
      const dir = join(pluginsDir, entry.name);
      const isDir = entry.isDirectory ||
        (entry.isSymlink && (await Deno.stat(dir).catch(() => undefined))?.isDirectory);
      if (!isDir) continue;
      const hasManifest = await Deno.lstat(join(dir, MANIFEST_FILE)).then(() => true, () => false);
      if (hasManifest) candidates.push(dir);
    }
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) return { plugins: [], invalid: [] };
    throw new ManifestError(
      "PLUGINS_DIR",
      `cannot read plugins folder ${pluginsDir}: ${String(cause)}`,
      [],
      {
        cause,
      },
    );
  }
  candidates.sort();
  const valid: PluginDescriptor[] = [];
  const invalid: InvalidPlugin[] = [];
  for (const dir of candidates) {
    try {
      const plugin = await loadManifest(dir);
      const range = plugin.manifest.plugin.requires_host;
      if (
        range !== undefined && options.hostVersion !== undefined &&
        !satisfies(options.hostVersion, range)
      ) {
        throw new ManifestError(
          "HOST_VERSION",
          `${plugin.manifestFile}: plugin ${plugin.name} requires plugsconc ${range}, this is ${options.hostVersion}`,
        );
      }
      valid.push(plugin);
    } catch (e) {
      const error = e instanceof PlugsconcError
        ? e
        : new ManifestError("MANIFEST_INVALID", `${dir}: ${String(e)}`, [], { cause: e });
      invalid.push({ dir, error });
    }
  }
  const byName = Map.groupBy(valid, (p) => p.name);
  const plugins: PluginDescriptor[] = [];
  for (const [name, group] of byName) {
    if (group.length === 1) {
      plugins.push(group[0]!);
      continue;
    }
    for (const p of group) {
      invalid.push({
        dir: p.dir,
        error: new ManifestError(
          "PLUGIN_DUPLICATE",
          `${p.manifestFile}: plugin name "${name}" is also used by ${
            group.filter((o) => o !== p).map((o) => o.dir).join(", ")
          }; every copy is refused until the names differ`,
        ),
      });
    }
  }
  for (const { dir, error } of invalid) {
    log.error("plugin in {dir} skipped: {reason}", {
      dir,
      reason: error.message,
      code: error.code,
    });
  }
  plugins.sort((a, b) => a.name.localeCompare(b.name));
  return { plugins, invalid };
}

/** What {@link planStartOrder} decided: who starts in which order, who cannot start. */
export interface StartPlan {
  /** Every plugin after its `depends_on`. */
  readonly order: readonly PluginDescriptor[];
  /** Plugins in a cycle, with a missing dependency, or depending on such a plugin. */
  readonly refused: readonly { readonly plugin: PluginDescriptor; readonly error: ManifestError }[];
}

/**
 * Orders plugins so every plugin comes after its `depends_on`. A plugin in a dependency cycle
 * (`DEPENDENCY_CYCLE`, naming the cycle), with a dependency that is not among `plugins`
 * (`DEPENDENCY_MISSING`), or depending on one of those (`DEPENDENCY_FAILED`) is refused; the
 * others are unaffected. The plugins a manifest may call (`capabilities.plugins`) come before
 * it too where that closes no cycle (see {@linkcode orderCallTargets}); they never refuse it.
 */
export function planStartOrder(plugins: readonly PluginDescriptor[]): StartPlan {
  const byName = new Map(plugins.map((p) => [p.name, p]));
  const state = new Map<string, "visiting" | "ok" | ManifestError>();
  const visiting: string[] = [];
  const order: PluginDescriptor[] = [];
  const visit = (p: PluginDescriptor): ManifestError | undefined => {
    const st = state.get(p.name);
    if (st === "ok") return undefined;
    if (st instanceof ManifestError) return st;
    if (st === "visiting") {
      const members = visiting.slice(visiting.indexOf(p.name));
      const e = new ManifestError(
        "DEPENDENCY_CYCLE",
        `plugin dependency cycle: ${[...members, p.name].join(" -> ")}; remove one of these ` +
          "depends_on entries",
      );
      for (const n of members) state.set(n, e);
      return e;
    }
    state.set(p.name, "visiting");
    visiting.push(p.name);
    let error: ManifestError | undefined;
    for (const dep of p.manifest.depends_on) {
      const d = byName.get(dep);
      if (d === undefined) {
        error = new ManifestError(
          "DEPENDENCY_MISSING",
          `plugin ${p.name} depends on ${dep}, which is not available (missing, invalid or disabled)`,
        );
        break;
      }
      const e = visit(d);
      if (e !== undefined) {
        const own = state.get(p.name);
        error = own instanceof ManifestError ? own : new ManifestError(
          "DEPENDENCY_FAILED",
          `plugin ${p.name} depends on ${dep}, which cannot start: ${e.message}`,
        );
        break;
      }
    }
    visiting.pop();
    if (error !== undefined) {
      state.set(p.name, error);
      return error;
    }
    state.set(p.name, "ok");
    order.push(p);
    return undefined;
  };
  const sorted = [...plugins].sort((a, b) => a.name.localeCompare(b.name));
  for (const p of sorted) visit(p);
  const refused = sorted.flatMap((plugin) => {
    const st = state.get(plugin.name);
    return st instanceof ManifestError ? [{ plugin, error: st }] : [];
  });
  return { order: orderCallTargets(order), refused };
}

/**
 * Orders plugins so every plugin comes after its `depends_on`; throws the first refusal of
 * {@link planStartOrder} (a cycle naming it, or a missing dependency naming both).
 */
export function orderByDependencies(plugins: readonly PluginDescriptor[]): PluginDescriptor[] {
  const { order, refused } = planStartOrder(plugins);
  if (refused.length > 0) throw refused[0]!.error;
  return [...order];
}
