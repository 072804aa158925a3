import { getLogger } from "@logtape/logtape";
import { PlugsconcError } from "../errors/mod.ts";
import { callTargets, ManifestError, type PluginDescriptor } from "../manifest/mod.ts";
import type { PluginPolicy } from "../pipeline/mod.ts";
import type { Entry, Running } from "./_entry.ts";

const log = getLogger(["plugsconc", "host"]);

/** What {@linkcode startInOrder} needs of the host. */
export interface StartContext {
  /** The entry of every plugin in `ordered`; each gets its running version or its error. */
  readonly entries: ReadonlyMap<string, Entry>;
  /** Compiles, checks and starts one plugin. */
  launch(plugin: PluginDescriptor, policy: PluginPolicy): Promise<Running>;
}

/**
 * Launches `ordered` (dependencies first, as `planStartOrder` lists them), each as soon as what
 * it depends on is running; a plugin whose dependency failed is not started. Each outcome is
 * recorded on its entry (its running version, or its error).
 */
export async function startInOrder(
  ordered: readonly PluginDescriptor[],
  ctx: StartContext,
): Promise<void> {
  const { entries } = ctx;
  const started = new Map<string, Promise<boolean>>();
  const startOne = async (plugin: PluginDescriptor): Promise<boolean> => {
    const entry = entries.get(plugin.name)!;
    // What it may call starts first when it comes earlier in `ordered` (read before any await:
    // a later plugin may call this one); its absence or failure only fails the calls.
    const targets = Promise.all(callTargets(plugin.manifest).map((d) => started.get(d)));
    const deps = await Promise.all(plugin.manifest.depends_on.map((d) => started.get(d)!));
    await targets;
    warnMissingTargets(plugin, entries);
    if (deps.some((ok) => !ok)) {
      entry.error = new ManifestError(
        "DEPENDENCY_FAILED",
        `plugin ${plugin.name} was not started: a plugin it depends on (${
          plugin.manifest.depends_on.join(", ")
        }) is not running`,
      );
      log.error("{message}", { plugin: plugin.name, message: entry.error.message });
      return false;
    }
    try {
      Object.assign(entry, await ctx.launch(plugin, entry.policy));
      return true;
    } catch (e) {
      entry.error = e instanceof PlugsconcError ? e : new PlugsconcError(
        "PLUGIN_START",
        `plugin ${plugin.name} failed to start: ${String(e)}`,
        { cause: e },
      );
      log.error("plugin {plugin} not started: {message}", {
        plugin: plugin.name,
        code: entry.error.code,
        message: entry.error.message,
      });
      return false;
    }
  };
  // `ordered` lists dependencies first, so each plugin's dependencies are already in `started`.
  for (const plugin of ordered) started.set(plugin.name, startOne(plugin));
  await Promise.all(started.values());
}

/** Warns of each plugin `plugin` may call that this host does not run at all. */
function warnMissingTargets(plugin: PluginDescriptor, entries: ReadonlyMap<string, Entry>): void {
  for (const target of callTargets(plugin.manifest)) {
    const entry = entries.get(target);
    if (entry !== undefined) {
      warnUnknownMethods(plugin, entry);
      continue;
    }
    log.warning(
      "plugin {plugin} may call {target}, which this host does not run (not found, invalid, " +
        "disabled or not allowed); its calls to it fail with PLUGIN_NOT_FOUND",
      { plugin: plugin.name, target },
    );
  }
}

/**
 * Warns of each method `plugin` may call on `target` that the target neither declares nor
 * announced: a misspelt grant, or one that applies once the target gains that method.
 */
function warnUnknownMethods(plugin: PluginDescriptor, target: Entry): void {
  const offered = new Set([
    ...Object.keys(target.plugin.manifest.methods),
    ...(target.methods ?? []),
  ]);
  const grant = plugin.manifest.capabilities.plugins.find((t) => t.name === target.plugin.name);
  const unknown = grant?.methods.filter((m) => !offered.has(m)) ?? [];
  if (unknown.length === 0) return;
  log.warning(
    "plugin {plugin} may call {target}.{methods}, which {target} does not offer; a misspelt " +
      "grant, or one that applies once {target} has such a method",
    { plugin: plugin.name, target: target.plugin.name, methods: unknown.join(", ") },
  );
}
