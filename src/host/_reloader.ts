import { getLogger } from "@logtape/logtape";
import { join } from "node:path";
import type { Config } from "../config/mod.ts";
import { loadManifest, MANIFEST_FILE, type PluginDescriptor } from "../manifest/mod.ts";
import { effectivePolicy, type PluginPolicy } from "../pipeline/mod.ts";
import type { CompiledSandbox } from "../sandbox/mod.ts";
import type { ChangeBatch } from "../watch/mod.ts";
import type { Entry, Running } from "./_entry.ts";
import type { Emit } from "./_host_listeners.ts";
import type { PluginIntegrity } from "./_plugin_integrity.ts";
import { stopEntry } from "./_stop_order.ts";
import { holdsWidening } from "./_widening_hold.ts";
import type { HostRuntime } from "./host_runtime.ts";

const log = getLogger(["plugsconc", "host"]);

/** What a {@linkcode Reloader} needs of the host. */
export interface ReloadContext {
  readonly config: Config;
  /** The config file, if one was read. */
  readonly configFile: string | undefined;
  /** The host's plugins by name: a batch replaces, adds, removes or fails one. */
  readonly entries: Map<string, Entry>;
  /** The sandbox each plugin name last started with: the baseline of a later reload. */
  readonly approved: ReadonlyMap<string, CompiledSandbox>;
  readonly integrity: PluginIntegrity;
  /** Reports each batch's outcome as a `change` event. */
  readonly emit: Emit;
  /** Whether the host is stopping: a batch then changes nothing. */
  stopping(): boolean;
  /** The host runtime, prepared on first use. */
  runtime(): Promise<HostRuntime>;
  /** Compiles, checks and starts one plugin version. */
  launch(plugin: PluginDescriptor, policy: PluginPolicy, runtime: HostRuntime): Promise<Running>;
}

/** Applies the watcher's change batches to the host's plugins, one at a time. */
export class Reloader {
  readonly #ctx: ReloadContext;
  #changes: Promise<void> = Promise.resolve();

  constructor(ctx: ReloadContext) {
    this.#ctx = ctx;
  }

  /** Batches queued from now on run after `started` settles. */
  waitFor(started: Promise<void>): void {
    this.#changes = started.catch(() => {});
  }

  /** Runs `batch` after those queued before it; a failure is logged. */
  queue(batch: ChangeBatch): Promise<void> {
    const run = this.#changes.then(() => this.#onChange(batch));
    this.#changes = run.catch((error) =>
      log.error("change batch for {dir} failed: {error}", { dir: batch.dir, error })
    );
    return this.#changes;
  }

  /**
   * Applies a change batch: re-validates the plugin's manifest, sandbox and module graph and,
   * if they pass, starts the new version, switches calls to it and drains the old one. A bad
   * change keeps the old version serving, unless the plugin is signed and its folder no longer
   * matches: then it is stopped (see `#stopIfTampered`). A new version of a signed plugin must
   * be signed too: one without a checksum is refused with `CHECKSUM_MISSING` and the running
   * version is stopped. A removed folder stops its plugin; a new one starts.
   */
  async #onChange(batch: ChangeBatch): Promise<void> {
    const { config, entries, emit } = this.#ctx;
    if (this.#ctx.stopping()) return;
    const dir = await Deno.realPath(batch.dir).catch(() => batch.dir);
    const current = [...entries.values()].find((e) =>
      e.plugin.dir === dir || e.plugin.dir === batch.dir
    );
    const paths = batch.paths;
    const hasManifest = batch.exists &&
      await Deno.stat(join(batch.dir, MANIFEST_FILE)).then(() => true, () => false);
    if (!hasManifest) {
      if (!current) {
        log.info("change in {dir}: no {manifest} (yet); nothing to start", {
          dir,
          manifest: MANIFEST_FILE,
          paths,
        });
      } else {
        log.info("plugin {plugin}: folder {dir} removed; stopping it", {
          plugin: current.plugin.name,
          dir,
          paths,
        });
        entries.delete(current.plugin.name);
        await stopEntry(current);
        emit("change", { plugin: current.plugin.name, dir, outcome: "stopped", paths });
      }
      return;
    }
    const refused = (name: string | undefined, reason: string) => {
      // What is on disk now is refused, not held: the hold, if any, is over.
      if (current) current.held = undefined;
      emit("change", { plugin: name, dir, outcome: "refused", paths, reason });
    };
    // Whether `current` was stopped because its folder no longer verifies.
    const tampered = (reloadError?: unknown) =>
      current !== undefined && this.#stopIfTampered(current, dir, paths, reloadError);
    let plugin: PluginDescriptor;
    try {
      plugin = await loadManifest(batch.dir);
    } catch (e) {
      if (await tampered()) return;
      log.error("change in {dir} refused: {error}; {keeping}", {
        dir,
        paths,
        error: messageOf(e),
        keeping: current ? `the running ${current.plugin.name} keeps serving` : "nothing started",
      });
      refused(current?.plugin.name, messageOf(e));
      return;
    }
    const allowed = config.security.allowed_plugins;
    if (
      config.plugins[plugin.name]?.enabled === false ||
      (allowed.length > 0 && !allowed.includes(plugin.name))
    ) {
      if (await tampered()) return;
      log.info("change in {dir}: plugin {plugin} is disabled or not allowed; not started", {
        dir,
        plugin: plugin.name,
        paths,
      });
      return;
    }
    const clash = entries.get(plugin.name);
    if (clash && clash !== current) {
      if (await tampered()) return;
      log.error("change in {dir} refused: plugin name {plugin} is already used by {other}", {
        dir,
        plugin: plugin.name,
        other: clash.plugin.dir,
        paths,
      });
      refused(plugin.name, `plugin name ${plugin.name} is already used by ${clash.plugin.dir}`);
      return;
    }
    let next: Entry;
    try {
      const runtime = await this.#ctx.runtime();
      const { configFile, approved } = this.#ctx;
      const held = holdsWidening({ current, plugin, paths }, {
        config,
        configFile,
        runtime,
        approved,
      });
      if (held) {
        if (await tampered()) return;
        // Shown on the running version until a new entry replaces it (reverted, host restarted).
        if (current) {
          const { diff, widened } = held;
          current.held = { since: current.held?.since ?? new Date(), diff, widened };
        }
        emit("change", { plugin: plugin.name, dir, outcome: "held", paths, reason: held.reason });
        return;
      }
      const policy = effectivePolicy(config, plugin);
      // A signed running version is replaced by a signed one only (else CHECKSUM_MISSING).
      if (current) this.#ctx.integrity.requireSigned(current.plugin, plugin);
      next = { plugin, policy, ...(await this.#ctx.launch(plugin, policy, runtime)) };
    } catch (e) {
      if (await tampered(e)) return;
      log.error("reload of {plugin} refused: {error}; {keeping}", {
        plugin: plugin.name,
        paths,
        error: messageOf(e),
        keeping: current ? "the old version keeps serving" : "it is not started",
      });
      refused(plugin.name, messageOf(e));
      return;
    }
    if (current && current.plugin.name !== plugin.name) entries.delete(current.plugin.name);
    entries.set(plugin.name, next);
    log.info("plugin {plugin} {version} {action} (pid {pid})", {
      plugin: plugin.name,
      version: plugin.manifest.plugin.version,
      action: current ? "reloaded" : "started",
      pid: next.supervisors?.[0]?.process?.pid,
      paths,
    });
    // In-flight calls on the old version finish (up to the grace period) before it stops.
    if (current) await stopEntry(current);
    emit("change", {
      plugin: plugin.name,
      dir,
      outcome: current ? "reloaded" : "started",
      paths,
    });
  }

  /**
   * When a change batch leaves `current` serving (refused, held, or not replaced), stops it if
   * its folder no longer verifies: it could still `import()` a changed file. That is when the
   * reload failed with `CHECKSUM_MISMATCH` (or `CHECKSUM_MISSING`, the running version being
   * signed and the new one not), or when the running version was verified against a
   * checksum at its spawn and the folder no longer hashes to that digest (or cannot be hashed).
   * The plugin is then failed with the integrity error, logged as an error. Returns whether it
   * was stopped.
   */
  async #stopIfTampered(
    current: Entry,
    dir: string,
    paths: readonly string[],
    reloadError?: unknown,
  ): Promise<boolean> {
    if (current.error !== undefined || current.supervisors === undefined) return false;
    const error = await this.#ctx.integrity.tampered(current.plugin, reloadError);
    if (error === undefined) return false;
    const name = current.plugin.name;
    log.error("plugin {plugin} stopped: {message}", {
      plugin: name,
      code: error.code,
      message: error.message,
      paths,
    });
    // Failed first, so that no new call reaches it while it stops.
    this.#ctx.entries.set(name, {
      plugin: current.plugin,
      policy: current.policy,
      compiled: current.compiled,
      error,
    });
    await stopEntry(current);
    this.#ctx.emit("change", {
      plugin: name,
      dir,
      outcome: "stopped",
      paths,
      reason: error.message,
    });
    return true;
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
