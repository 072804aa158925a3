import { getLogger } from "@logtape/logtape";
import { join } from "node:path";
import { argvHash, auditEvent, type AuditTrail, codeHash, openProcessAudit } from "../audit/mod.ts";
import type { Config } from "../config/mod.ts";
import type { PluginDescriptor } from "../manifest/mod.ts";
import type { Counter, MetricsRegistry } from "../metrics/mod.ts";
import { CallPipeline, InstanceSet, type PluginPolicy } from "../pipeline/mod.ts";
import {
  pluginLogBudget,
  PluginProcess,
  PluginSocket,
  PluginSupervisor,
  ROOT_CAPS_DROPPED,
  socketSupported,
} from "../runtime/mod.ts";
import {
  checkGrantSymlinks,
  checkModuleGraph,
  type CompiledSandbox,
  compileSandbox,
  throwIfRefused,
  withSocketGrants,
} from "../sandbox/mod.ts";
import type { Running } from "./_entry.ts";
import type { Emit } from "./_host_listeners.ts";
import type { PluginIntegrity } from "./_plugin_integrity.ts";
import { type HostRuntime, sandboxContext } from "./host_runtime.ts";
import { ProcessService } from "./process_service.ts";
import { type PluginCaller, PluginCallService } from "./plugin_call_service.ts";
import { configureParams } from "./typed_methods.ts";

const log = getLogger(["plugsconc", "host"]);

/** What a {@linkcode Launcher} needs of the host. */
export interface LaunchContext {
  readonly config: Config;
  /** The config file, if one was read. */
  readonly configFile: string | undefined;
  readonly metrics: MetricsRegistry;
  /** Counts failed `$/health` checks, by plugin. */
  readonly healthFailures: Counter;
  /** Checks a plugin's folder against its checksum before every spawn. */
  readonly integrity: PluginIntegrity;
  /** The sandbox each plugin name last started with: set at every launch. */
  readonly approved: Map<string, CompiledSandbox>;
  /** Reports each instance's state changes. */
  readonly emit: Emit;
  /** Where permission usage and denied attempts go (`undefined`: metrics only). */
  readonly audit?: AuditTrail;
  /** Whether a plugin runs with the permission audit (default: yes). */
  readonly permissionAudit?: (plugin: PluginDescriptor) => boolean;
  /** Runs a plugin's calls to other plugins (`host/plugins.call`); absent: all refused. */
  readonly plugins?: PluginCaller;
}

/** Starts plugin versions: sandbox, checks, supervised processes, call pipeline. */
export class Launcher {
  readonly #ctx: LaunchContext;
  /** Permission audits still draining after their process exited. */
  readonly #draining = new Set<Promise<void>>();

  /** Resolves when every permission audit of an exited process has drained and written. */
  async settleAudits(): Promise<void> {
    while (this.#draining.size > 0) await Promise.allSettled([...this.#draining]);
  }

  #track(closing: Promise<void>): void {
    const p = closing.catch((error) => log.error("permission audit: {error}", { error }))
      .finally(() => this.#draining.delete(p));
    this.#draining.add(p);
  }

  constructor(ctx: LaunchContext) {
    this.#ctx = ctx;
  }

  /**
   * Compiles, checks and starts one plugin: `instances` processes, each under its own
   * supervisor, behind one call pipeline. If one instance cannot start, none is kept.
   */
  async launch(
    plugin: PluginDescriptor,
    policy: PluginPolicy,
    runtime: HostRuntime,
  ): Promise<Running> {
    const { config, configFile, metrics, integrity, emit } = this.#ctx;
    const sandboxCtx = sandboxContext(config, configFile, plugin, runtime);
    const { denoCacheDir } = sandboxCtx;
    await Deno.mkdir(sandboxCtx.dataDir, { recursive: true });
    await Deno.mkdir(denoCacheDir, { recursive: true });
    const compiled = compileSandbox(plugin, sandboxCtx);
    for (const warning of compiled.warnings) {
      log.warning("plugin {plugin}: {warning}", { plugin: plugin.name, warning });
    }
    const refusals = [...compiled.refusals, ...(await checkGrantSymlinks(compiled))];
    if (refusals.length > 0) {
      auditEvent({ kind: "grant.refused", plugin: plugin.name, detail: { refusals } });
    }
    throwIfRefused({ plugin, refusals });
    // Config checked against config.schema before anything is spawned; sent in $/configure.
    const configure = configureParams(plugin, config);
    const override = config.plugins[plugin.name];
    const settings = {
      startTimeoutMs: override?.start_timeout_ms ?? config.defaults.start_timeout_ms,
      restart: { ...config.defaults.restart, ...override?.restart },
      stopGraceMs: config.defaults.stop_grace_ms,
    };
    // One log budget for all instances and restarts of this plugin.
    const logBudget = pluginLogBudget(plugin.name, config, metrics);
    const [bin, ...prefix] = runtime.setpriv
      ? [runtime.setpriv, "--pdeathsig", "KILL", "--", runtime.denoBin]
      : [runtime.denoBin];
    // As root, a plugin with a socket runs without the capabilities that ignore file modes, so
    // that the socket's read-only folder holds (`PluginSocket`).
    const rootPrefix = ["--pdeathsig", "KILL", `--bounding-set=${ROOT_CAPS_DROPPED}`, "--"]
      .concat(runtime.denoBin);
    // The process service's children see the plugin's declared env (nothing of the host's)
    // and, like the plugin, die with the host.
    const childEnv = Object.fromEntries(
      plugin.manifest.capabilities.env.flatMap((name) =>
        compiled.env[name] === undefined ? [] : [[name, compiled.env[name]!]]
      ),
    );
    // Each child starts in, and calls HOME, a new empty folder under one the plugin cannot
    // reach: programs read configuration (and so code) from both.
    const childHome = join(config.dirs.data, "process", plugin.name);
    if (plugin.manifest.capabilities.process.length > 0) {
      await Deno.mkdir(childHome, { recursive: true, mode: 0o700 });
    }
    const childPrefix = [
      ...(runtime.setsid ? [runtime.setsid] : []),
      ...(runtime.setpriv ? [runtime.setpriv, "--pdeathsig", "KILL", "--"] : []),
    ];
    const makeSupervisor = (index: number) =>
      new PluginSupervisor({
        name: plugin.name,
        restart: settings.restart,
        stopGraceMs: settings.stopGraceMs,
        launch: async (signal) => {
          // Re-checked before every spawn: the code on disk may have changed since the last one.
          // The graph check refuses static imports from outside the folder; the checksum covers
          // the whole folder (what a computed import() may load), not only the graph.
          const graph = await checkModuleGraph(plugin, {
            denoBin: runtime.denoBin,
            importMapPath: runtime.importMapPath,
            allowed: runtime.sdkFiles,
            denoDir: denoCacheDir,
            signal,
          });
          await integrity.verify(plugin, signal);
          // One per process: its children die with it (crash, stop or restart).
          const processes = new ProcessService({
            plugin: plugin.name,
            capabilities: plugin.manifest.capabilities.process,
            cwd: childHome,
            dataDir: sandboxCtx.dataDir,
            commands: compiled.commands,
            stdinNeedsListing: config.security.policy === "strict",
            freshWorkdir: true,
            env: childEnv,
            prefix: childPrefix,
            processGroups: runtime.setsid !== undefined,
            forbiddenRoots: [config.dirs.plugins, config.dirs.data],
          });
          // Its calls to other plugins: each takes the chain and deadline of the call it serves.
          const targets = plugin.manifest.capabilities.plugins;
          let running: PluginProcess | undefined;
          const calls = new PluginCallService({
            plugin: plugin.name,
            targets: this.#ctx.plugins === undefined ? [] : targets,
            host: this.#ctx.plugins ?? NO_PLUGINS,
            contextOf: (request) => running?.callContext(request),
          });
          // Its own Unix socket for the protocol (granted that one path), where it can have one.
          const socket = config.defaults.transport === "auto" && socketSupported(runtime.setpriv)
            ? await PluginSocket.open()
            : undefined;
          // Deno reports every permission check to a FIFO outside the plugin's grants.
          const audit = this.#ctx.permissionAudit?.(plugin) === false
            ? undefined
            : await openProcessAudit(plugin.name, {
              compiled,
              dirs: [join(config.dirs.data, "permission_audit")],
              trail: this.#ctx.audit,
              metrics,
              socketPath: socket?.path,
            });
          const started = PluginProcess.start({
            name: plugin.name,
            bin: bin!,
            args: [
              ...(socket !== undefined && Deno.uid() === 0 ? rootPrefix : prefix),
              ...(socket === undefined
                ? compiled.argv
                : withSocketGrants(compiled.argv, socket.path)),
            ],
            env: { ...compiled.env, ...audit?.env, ...socket?.env },
            socket,
            cwd: plugin.dir,
            protocolVersion: plugin.manifest.handshake.protocol_version,
            version: plugin.manifest.plugin.version,
            startTimeoutMs: settings.startTimeoutMs,
            maxLineBytes: config.defaults.max_line_bytes,
            stopGraceMs: settings.stopGraceMs,
            signal,
            handlers: { ...processes.handlers, ...calls.handlers },
            keepCallContexts: targets.length > 0,
            onExit: async () => {
              // The audit drains its FIFO in the background: the supervisor must learn of the
              // exit (and restart) at once; the host's stop waits for it (settleAudits).
              this.#track(
                (audit?.close() ?? Promise.resolve()).finally(() =>
                  auditEvent({
                    kind: "plugin.exit",
                    plugin: plugin.name,
                    detail: { instance: index },
                  })
                ),
              );
              await processes.close();
            },
            logBudget,
            configure,
          });
          started.then(() => processes.open(), () => {
            processes.close();
            if (audit) this.#track(audit.close());
          });
          const proc = running = await started;
          auditEvent({
            kind: "plugin.start",
            plugin: plugin.name,
            detail: {
              instance: index,
              pid: proc.pid,
              version: plugin.manifest.plugin.version,
              argvSha256: argvHash(compiled.argv),
              codeSha256: await codeHash(graph.files).catch(() => null),
              grants: compiled.grants,
              permissionAudit: audit !== undefined,
            },
          });
          return proc;
        },
        onStateChange: (state, detail) => {
          log.info("plugin {plugin} is {state}", {
            plugin: plugin.name,
            ...(policy.instances > 1 ? { instance: index } : {}),
            state,
            restarts: detail.restarts,
          });
          emit("state", {
            plugin: plugin.name,
            instance: index,
            state,
            restarts: detail.restarts,
          });
        },
      });
    const supervisors = Array.from({ length: policy.instances }, (_, i) => makeSupervisor(i));
    const stopAll = () => Promise.allSettled(supervisors.map((s) => s.stop()));
    const started = await Promise.allSettled(supervisors.map((s) => s.start()));
    const failed = started.find((r) => r.status === "rejected");
    if (failed) {
      await stopAll();
      throw failed.reason;
    }
    let instances: InstanceSet | undefined;
    let pipeline: CallPipeline;
    try {
      instances = new InstanceSet({
        plugin: plugin.name,
        endpoints: supervisors,
        policy,
        onHealthFailure: () => this.#ctx.healthFailures.inc([plugin.name]),
      });
      pipeline = new CallPipeline({ policy, instances, metrics });
    } catch (e) {
      // Nothing may be left running for a plugin that is not kept.
      await instances?.close();
      await stopAll();
      throw e;
    }
    instances.startHealthChecks();
    log.info("plugin {plugin} {version} ready (pid {pid})", {
      plugin: plugin.name,
      version: plugin.manifest.plugin.version,
      pid: supervisors.map((s) => s.process?.pid).join(", "),
    });
    const methods = new Set([
      ...supervisors.flatMap((s) => s.process?.ready.methods ?? []),
      ...Object.keys(plugin.manifest.methods),
    ]);
    this.#ctx.approved.set(plugin.name, compiled);
    return { compiled, methods, supervisors, instances, pipeline };
  }
}

/** The host of a launcher without one: every call is refused before it gets here. */
const NO_PLUGINS: PluginCaller = {
  call: () => Promise.reject(new Error("no plugin calls on this host")),
  timeoutFor: () => 0,
};
