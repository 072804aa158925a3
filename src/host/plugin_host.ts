import { getLogger } from "@logtape/logtape";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Config, loadConfig, type LoadedConfig, resolveConfig } from "../config/mod.ts";
import { PlugsconcError } from "../errors/mod.ts";
import {
  assertVerified,
  checksumFilePath,
  digestPlugin,
  IntegrityError,
  verifyPlugin,
} from "../integrity/mod.ts";
import { LogStore } from "../logs/mod.ts";
import { MetricsRegistry } from "../metrics/mod.ts";
import {
  CallPipeline,
  effectivePolicy,
  type HealthStatus,
  InstanceSet,
  type PluginPolicy,
  timeoutOf,
} from "../pipeline/mod.ts";
import { poolOptionsFromConfig, WorkerPool } from "../pool/mod.ts";
import {
  discoverPlugins,
  type Discovery,
  loadManifest,
  MANIFEST_FILE,
  ManifestError,
  planStartOrder,
  type PluginDescriptor,
} from "../manifest/mod.ts";
import {
  describeFailure,
  findDenoBinary,
  findSetpriv,
  findSetsid,
  pluginLogBudget,
  PluginNotFoundError,
  PluginProcess,
  type PluginState,
  PluginSupervisor,
  PluginUnavailableError,
} from "../runtime/mod.ts";
import {
  checkGrantSymlinks,
  checkModuleGraph,
  type CompiledSandbox,
  compileSandbox,
  describeWidening,
  type SandboxContext,
  sdkModuleFiles,
  throwIfRefused,
  widenedGrants,
} from "../sandbox/mod.ts";
import { VERSION } from "../version.ts";
import { type ChangeBatch, PluginWatcher } from "../watch/mod.ts";
import { ProcessService } from "./process_service.ts";
import { materializeSdk, writeIfChanged } from "./sdk_files.ts";

/** Options for {@link PluginHost.start}. */
export interface PluginHostOptions {
  /** A config file to load. Default: `config.yaml` if neither this nor `config` is given. */
  configPath?: string;
  /** A config object (as in `config.yaml`) or an already loaded config. */
  config?: unknown;
  /** Folder that relative paths in `config` resolve against. Default: the working directory. */
  baseDir?: string;
  /** Start only these plugins (and what they depend on). Default: every enabled plugin. */
  only?: readonly string[];
  /**
   * Watch the plugins folder and reload changed plugins (`watcher.enabled` and
   * `watcher.reload`). Default: as configured, and off when `only` is given.
   */
  watch?: boolean;
  /**
   * The log store the process writes to (see `setupHostLogging`), exposed as `host.logs`.
   * Default: the host opens `logging.store.db_file` itself when `logging.store.enabled`
   * (for queries; records reach it only where logging is set up with the store's sink).
   */
  logStore?: LogStore;
}

/** Options of one call. */
export interface CallOptions {
  /** Aborting it cancels the call (the plugin gets `$/cancel`). */
  signal?: AbortSignal;
  /** Overrides the configured timeout. */
  timeoutMs?: number;
}

/** What `plugins()` reports for each plugin. */
export interface PluginInfo {
  readonly name: string;
  readonly version: string;
  readonly state: PluginState;
  readonly pid: number | undefined;
  readonly restarts: number;
  readonly dir: string;
  /** Methods the plugin announced (empty until it is ready). */
  readonly methods: readonly string[];
  /** One-line grants summary, e.g. `read: ./data; net: api.example.com:443`. */
  readonly grants: string;
  /** Why it is not running, when it is failed. */
  readonly error: string | undefined;
  /** Health across its instances (`offline` when none runs). */
  readonly health: HealthStatus;
  /** Each process: index, state, pid, health. */
  readonly instances: readonly InstanceInfo[];
  /** Circuit breaker state. */
  readonly breaker: "closed" | "open" | "half-open";
}

/** One process of a plugin, as `plugins()` and `health()` report it. */
export interface InstanceInfo {
  readonly index: number;
  readonly state: PluginState;
  readonly pid: number | undefined;
  readonly restarts: number;
  readonly health: HealthStatus;
  readonly message: string | undefined;
  readonly inFlight: number;
}

/** What `health()` reports: the host's status and each enabled plugin's. */
export interface HostHealth {
  /** `healthy` when every plugin is; otherwise the worst plugin status. */
  readonly status: HealthStatus;
  readonly plugins: Readonly<
    Record<string, { status: HealthStatus; instances: readonly InstanceInfo[]; error?: string }>
  >;
}

interface Running {
  readonly compiled: CompiledSandbox;
  /** What callers may call: the methods announced at start, and the manifest's. */
  readonly methods: ReadonlySet<string>;
  readonly supervisors: readonly PluginSupervisor[];
  readonly instances: InstanceSet;
  readonly pipeline: CallPipeline;
}

interface Entry extends Partial<Running> {
  readonly plugin: PluginDescriptor;
  readonly policy: PluginPolicy;
  error?: PlugsconcError;
}

const log = getLogger(["plugsconc", "host"]);

/** What {@linkcode PluginHost.on} reports, by event name. */
export interface PluginHostEvents {
  /** A plugin instance changed state (starting, ready, crashed, backoff, failed, ...). */
  state: {
    readonly plugin: string;
    readonly instance: number;
    readonly state: PluginState;
    readonly restarts: number;
  };
  /**
   * The outcome of a change batch of the watcher: a plugin `reloaded`, `started` (a new folder),
   * `stopped` (its folder removed, or a signed plugin's folder no longer matches its checksum:
   * it is failed, `reason` says why), `refused` (a bad change: the old version keeps serving) or
   * `held` (a widening under strict).
   */
  change: {
    readonly plugin: string | undefined;
    readonly dir: string;
    readonly outcome: "reloaded" | "started" | "stopped" | "refused" | "held";
    readonly paths: readonly string[];
    /** Why it was refused or held. */
    readonly reason?: string;
  };
}

/**
 * The plugin host: discovers plugins, compiles each one's sandbox, verifies its module graph,
 * starts it under supervision (in `depends_on` order) and routes calls to it.
 *
 * @example
 * ```ts
 * await using host = await PluginHost.start({ configPath: "config.yaml" });
 * console.log(await host.call("cat", "speak", { loud: true }));
 * ```
 */
export class PluginHost implements AsyncDisposable {
  /** The effective config. */
  readonly config: Config;
  /** The config file, if one was read. */
  readonly configFile: string | undefined;
  /** Plugins found and plugin folders refused. */
  readonly discovery: Discovery;
  readonly #entries: Map<string, Entry>;
  #stopping: Promise<void> | undefined;
  #runtime: HostRuntime | undefined;
  #watcher: PluginWatcher | undefined;
  #started: Promise<void> = Promise.resolve();
  /** The sandbox each plugin name last started with: the baseline of a later reload. */
  readonly #approved = new Map<string, CompiledSandbox>();
  /** The folder digest each signed plugin version was last verified with at a spawn. */
  readonly #verified = new WeakMap<PluginDescriptor, string>();
  #changes: Promise<void> = Promise.resolve();
  readonly #pool: WorkerPool | undefined;
  #logs: LogStore | undefined;
  readonly #ownsLogs: boolean;
  /**
   * Metrics of the pipeline (calls, failures, latency, breaker, retries, rate limit), the
   * runtime (restarts, state, health) and the pool; `host.metrics.prometheus()` for text.
   */
  readonly metrics: MetricsRegistry = new MetricsRegistry();
  readonly #listeners: { [K in keyof PluginHostEvents]: Set<(e: PluginHostEvents[K]) => void> } = {
    state: new Set(),
    change: new Set(),
  };
  readonly #healthFailures = this.metrics.counter(
    "plugsconc_health_check_failures_total",
    "Failed $/health checks.",
    ["plugin"],
  );

  private constructor(
    loaded: LoadedConfig,
    discovery: Discovery,
    entries: Map<string, Entry>,
    logStore: LogStore | undefined,
  ) {
    this.config = loaded.config;
    this.configFile = loaded.file;
    this.discovery = discovery;
    this.#entries = entries;
    this.#logs = logStore;
    this.#ownsLogs = logStore === undefined;
    if (loaded.config.worker_pool.enabled) {
      this.#pool = new WorkerPool(poolOptionsFromConfig(loaded.config.worker_pool));
    }
    this.#registerRuntimeMetrics();
  }

  #registerRuntimeMetrics(): void {
    const each = (f: (e: Entry) => void) => () => this.#entries.forEach(f);
    const m = this.metrics;
    m.gauge(
      "plugsconc_plugin_restarts",
      "Restarts after a crash, summed over instances.",
      [
        "plugin",
      ],
      (set) =>
        each((e) =>
          set([e.plugin.name], (e.supervisors ?? []).reduce((n, s) => n + s.restarts, 0))
        )(),
    );
    m.gauge(
      "plugsconc_plugin_up",
      "Instances ready to serve (state ready and healthy or degraded).",
      ["plugin"],
      (set) =>
        each((e) =>
          set(
            [e.plugin.name],
            (e.instances?.instances ?? []).filter((i) =>
              i.health === "healthy" || i.health === "degraded"
            ).length,
          )
        )(),
    );
    m.gauge(
      "plugsconc_plugin_instances",
      "Instances configured.",
      ["plugin"],
      (set) => each((e) => set([e.plugin.name], e.supervisors?.length ?? 0))(),
    );
    m.gauge(
      "plugsconc_plugin_health",
      "Plugin health: 1 for the current status.",
      ["plugin", "status"],
      (set) =>
        each((e) => {
          const status = e.instances?.health ?? "offline";
          for (const s of ["healthy", "degraded", "unhealthy", "offline"]) {
            set([e.plugin.name, s], s === status ? 1 : 0);
          }
        })(),
    );
    m.gauge("plugsconc_pool_queue_depth", "Jobs waiting in the worker pool's queue.", [], (set) => {
      if (this.#pool) set([], this.#pool.metrics().queueDepth);
    });
    m.gauge(
      "plugsconc_pool_jobs",
      "Worker pool jobs by outcome (since start).",
      ["outcome"],
      (set) => {
        if (!this.#pool) return;
        const p = this.#pool.metrics();
        for (
          const k of [
            "submitted",
            "rejected",
            "succeeded",
            "failed",
            "retried",
            "cancelled",
          ] as const
        ) {
          set([k], p[k]);
        }
      },
    );
  }

  /**
   * The job pool (`worker_pool`): the host hashes plugin code in it, and applications can
   * submit their own jobs.
   *
   * @example
   * ```ts
   * const result = await host.pool.submit({ module: new URL("./jobs.ts", import.meta.url).href, fn: "resize", input });
   * ```
   * @throws {PlugsconcError} `POOL_DISABLED` when `worker_pool.enabled` is false
   */
  get pool(): WorkerPool {
    if (this.#pool === undefined) {
      throw new PlugsconcError(
        "POOL_DISABLED",
        "the job pool is off (worker_pool.enabled: false in the config); turn it on to use host.pool",
      );
    }
    return this.#pool;
  }

  /**
   * The persistent log store: `host.logs.query({ plugin, minLevel, since, grep, limit })`,
   * `host.logs.stats()`.
   *
   * Without `logStore` in the start options, the host opens `logging.store.db_file` read-only
   * on first use.
   *
   * @throws {PlugsconcError} `LOG_STORE_DISABLED` when `logging.store.enabled` is false;
   *   {LogStoreError} when the database cannot be opened (`LOG_STORE_MISSING`: none yet)
   */
  get logs(): LogStore {
    if (this.#logs === undefined) {
      const cfg = this.config.logging.store;
      if (!cfg.enabled) {
        throw new PlugsconcError(
          "LOG_STORE_DISABLED",
          "the log store is off (logging.store.enabled: false in the config); turn it on to use host.logs",
        );
      }
      // Read-only: this host does not write here (no sink was given), and a reader never
      // changes the file or waits for a migration lock.
      this.#logs = LogStore.openSync(cfg.db_file, { readOnly: true });
    }
    return this.#logs;
  }

  /**
   * Loads the config, discovers plugins and starts every enabled one. A plugin that is refused
   * (bad grant, module outside its folder) or fails to start is logged and reported by
   * `plugins()` as `failed`; the host still starts.
   *
   * A `depends_on` cycle or missing dependency marks the plugins concerned failed.
   *
   * @throws {ConfigError} for a bad config; {PluginNotFoundError} for an unknown name in `only`
   */
  static async start(options: PluginHostOptions = {}): Promise<PluginHost> {
    const loaded = await loadHostConfig(options);
    const config = loaded.config;
    // Watching starts before discovery: an edit made while plugins start is reloaded after.
    const watch = options.watch ?? (options.only === undefined && config.watcher.enabled);
    let host: PluginHost | undefined;
    const early: ChangeBatch[] = [];
    const watcher = watch
      ? new PluginWatcher({
        root: config.dirs.plugins,
        debounceMs: config.watcher.debounce_ms,
        ignore: config.watcher.ignore,
        onBatch: (batch) => {
          if (!config.watcher.reload) return undefined;
          if (host === undefined) return void early.push(batch);
          return host.#queueChange(batch);
        },
      })
      : undefined;
    try {
      await watcher?.ready;
      host = await PluginHost.#create(loaded, options);
    } catch (e) {
      await watcher?.close();
      throw e;
    }
    host.#watcher = watcher;
    try {
      await host.#started;
    } catch (e) {
      await host.stop();
      throw e;
    }
    for (const batch of early) void host.#queueChange(batch);
    return host;
  }

  static async #create(loaded: LoadedConfig, options: PluginHostOptions): Promise<PluginHost> {
    const config = loaded.config;
    const discovery = await discoverPlugins(config.dirs.plugins, { hostVersion: VERSION });
    const allowed = config.security.allowed_plugins;
    const enabled = discovery.plugins.filter((p) => {
      if (config.plugins[p.name]?.enabled === false) return false;
      if (allowed.length > 0 && !allowed.includes(p.name)) {
        log.warning("plugin {plugin} is not in security.allowed_plugins; not started", {
          plugin: p.name,
        });
        return false;
      }
      return true;
    });
    const wanted = options.only ? closure(enabled, options.only) : enabled;
    // A cycle or a missing dependency refuses the plugins concerned; the others start.
    const { order: ordered, refused } = planStartOrder(wanted);
    const entry = (plugin: PluginDescriptor): [string, Entry] => [
      plugin.name,
      { plugin, policy: effectivePolicy(config, plugin) },
    ];
    const entries = new Map([...ordered.map(entry), ...refused.map((r) => entry(r.plugin))]);
    for (const { plugin, error } of refused) {
      entries.get(plugin.name)!.error = error;
      log.error("plugin {plugin} not started: {message}", {
        plugin: plugin.name,
        code: error.code,
        message: error.message,
      });
    }
    const host = new PluginHost(loaded, discovery, entries, options.logStore);
    host.#started = host.#startAll(ordered);
    // Change batches wait for the start, then run one at a time: two folders claiming one
    // name, or a reload racing a removal, are decided in order.
    host.#changes = host.#started.catch(() => {});
    return host;
  }

  #queueChange(batch: ChangeBatch): Promise<void> {
    const run = this.#changes.then(() => this.#onChange(batch));
    this.#changes = run.catch((error) =>
      log.error("change batch for {dir} failed: {error}", { dir: batch.dir, error })
    );
    return this.#changes;
  }

  /**
   * Calls `listener` on every event of that kind until the returned function is called. A
   * listener that throws is logged and does not disturb the host or the other listeners.
   *
   * @example
   * ```ts
   * const off = host.on("state", (e) => console.log(e.plugin, e.state));
   * host.on("change", (e) => e.outcome === "held" && alert(e.reason));
   * off();
   * ```
   */
  on<K extends keyof PluginHostEvents>(
    type: K,
    listener: (event: PluginHostEvents[K]) => void,
  ): () => void {
    const set = this.#listeners[type] as Set<(e: PluginHostEvents[K]) => void>;
    if (set === undefined) throw new RangeError(`unknown event ${JSON.stringify(type)}`);
    set.add(listener);
    return () => void set.delete(listener);
  }

  #emit<K extends keyof PluginHostEvents>(type: K, event: PluginHostEvents[K]): void {
    for (const listener of this.#listeners[type] as Set<(e: PluginHostEvents[K]) => void>) {
      try {
        listener(event);
      } catch (error) {
        log.error("a listener of host event {type} threw: {error}", { type, error });
      }
    }
  }

  /** The folder being watched for changes, if any. */
  get watchedFolder(): string | undefined {
    return this.#watcher?.root;
  }

  /**
   * Applies a change batch: re-validates the plugin's manifest, sandbox and module graph and,
   * if they pass, starts the new version, switches calls to it and drains the old one. A bad
   * change keeps the old version serving, unless the plugin is signed and its folder no longer
   * matches: then it is stopped (see `#stopIfTampered`). A removed folder stops its plugin; a
   * new one starts.
   */
  async #onChange(batch: ChangeBatch): Promise<void> {
    if (this.#stopping) return;
    const dir = await Deno.realPath(batch.dir).catch(() => batch.dir);
    const current = [...this.#entries.values()].find((e) =>
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
        this.#entries.delete(current.plugin.name);
        await stopEntry(current);
        this.#emit("change", { plugin: current.plugin.name, dir, outcome: "stopped", paths });
      }
      return;
    }
    const refused = (name: string | undefined, reason: string) =>
      this.#emit("change", { plugin: name, dir, outcome: "refused", paths, reason });
    let plugin: PluginDescriptor;
    try {
      plugin = await loadManifest(batch.dir);
    } catch (e) {
      if (current && await this.#stopIfTampered(current, dir, paths)) return;
      log.error("change in {dir} refused: {error}; {keeping}", {
        dir,
        paths,
        error: e instanceof Error ? e.message : String(e),
        keeping: current ? `the running ${current.plugin.name} keeps serving` : "nothing started",
      });
      refused(current?.plugin.name, e instanceof Error ? e.message : String(e));
      return;
    }
    const config = this.config;
    const allowed = config.security.allowed_plugins;
    if (
      config.plugins[plugin.name]?.enabled === false ||
      (allowed.length > 0 && !allowed.includes(plugin.name))
    ) {
      if (current && await this.#stopIfTampered(current, dir, paths)) return;
      log.info("change in {dir}: plugin {plugin} is disabled or not allowed; not started", {
        dir,
        plugin: plugin.name,
        paths,
      });
      return;
    }
    const clash = this.#entries.get(plugin.name);
    if (clash && clash !== current) {
      if (current && await this.#stopIfTampered(current, dir, paths)) return;
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
      this.#runtime ??= await prepareRuntime(config);
      const held = this.#holdsWidening(current, plugin, this.#runtime, paths);
      if (held) {
        if (current && await this.#stopIfTampered(current, dir, paths)) return;
        this.#emit("change", { plugin: plugin.name, dir, outcome: "held", paths, reason: held });
        return;
      }
      const policy = effectivePolicy(config, plugin);
      next = { plugin, policy, ...(await this.#launch(plugin, policy, this.#runtime)) };
    } catch (e) {
      if (current && await this.#stopIfTampered(current, dir, paths, e)) return;
      log.error("reload of {plugin} refused: {error}; {keeping}", {
        plugin: plugin.name,
        paths,
        error: e instanceof Error ? e.message : String(e),
        keeping: current ? "the old version keeps serving" : "it is not started",
      });
      refused(plugin.name, e instanceof Error ? e.message : String(e));
      return;
    }
    if (current && current.plugin.name !== plugin.name) this.#entries.delete(current.plugin.name);
    this.#entries.set(plugin.name, next);
    log.info("plugin {plugin} {version} {action} (pid {pid})", {
      plugin: plugin.name,
      version: plugin.manifest.plugin.version,
      action: current ? "reloaded" : "started",
      pid: next.supervisors?.[0]?.process?.pid,
      paths,
    });
    // In-flight calls on the old version finish (up to the grace period) before it stops.
    if (current) await stopEntry(current);
    this.#emit("change", {
      plugin: plugin.name,
      dir,
      outcome: current ? "reloaded" : "started",
      paths,
    });
  }

  /**
   * Why a reload must wait, if it must: the new manifest grants more than the running version
   * has (DESIGN §6). Under `security.policy: strict` it is held, logged with the diff, until the
   * host restarts (an operator's decision) or the change is reverted; `permissive` reloads and
   * warns.
   */
  #holdsWidening(
    current: Entry | undefined,
    plugin: PluginDescriptor,
    runtime: HostRuntime,
    paths: readonly string[],
  ): string | undefined {
    const config = this.config;
    const sandbox = (p: PluginDescriptor) =>
      compileSandbox(p, sandboxContext(config, this.configFile, p, runtime));
    const next = sandbox(plugin);
    // Refused grants are #launch's to report: a restart would not grant them either.
    if (next.refusals.length > 0) return undefined;
    // Removed and added again, a plugin is compared with what it last ran with.
    const baseline = current
      ? current.compiled ?? sandbox(current.plugin)
      : this.#approved.get(plugin.name);
    const renamed = current !== undefined && current.plugin.name !== plugin.name;
    const widened = baseline ? widenedGrants(baseline, next) : [];
    if (widened.length === 0 && !renamed) return undefined;
    const diff = [
      // Another name means another plugin's host config (env values, memory, timeouts).
      ...(renamed ? [`renamed from ${current.plugin.name}`] : []),
      ...(widened.length > 0 ? [describeWidening(widened)] : []),
    ].join("; ");
    const fields = { plugin: plugin.name, diff, widened, paths };
    if (config.security.policy === "permissive") {
      log.warning(
        "plugin {plugin} reloads with wider capabilities: {diff} (security.policy: permissive)",
        fields,
      );
      return undefined;
    }
    log.warning(
      "reload of {plugin} held: its manifest widens its capabilities: {diff}. The running " +
        "process keeps serving with its grants (restarted after a crash, it runs the code now " +
        "on disk with those grants). Restart the host to grant them, or revert the change " +
        "(security.policy: strict)",
      fields,
    );
    return `its manifest widens its capabilities: ${diff}`;
  }

  async #startAll(ordered: readonly PluginDescriptor[]): Promise<void> {
    if (ordered.length === 0) return;
    const runtime = await prepareRuntime(this.config);
    this.#runtime = runtime;
    const started = new Map<string, Promise<boolean>>();
    const startOne = async (plugin: PluginDescriptor): Promise<boolean> => {
      const entry = this.#entries.get(plugin.name)!;
      const deps = await Promise.all(plugin.manifest.depends_on.map((d) => started.get(d)!));
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
        Object.assign(entry, await this.#launch(plugin, entry.policy, runtime));
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

  /**
   * Compiles, checks and starts one plugin: `instances` processes, each under its own
   * supervisor, behind one call pipeline. If one instance cannot start, none is kept.
   */
  async #launch(
    plugin: PluginDescriptor,
    policy: PluginPolicy,
    ctx: HostRuntime,
  ): Promise<Running> {
    const config = this.config;
    const sandboxCtx = sandboxContext(config, this.configFile, plugin, ctx);
    const { denoCacheDir } = sandboxCtx;
    await Deno.mkdir(sandboxCtx.dataDir, { recursive: true });
    await Deno.mkdir(denoCacheDir, { recursive: true });
    const compiled = compileSandbox(plugin, sandboxCtx);
    for (const warning of compiled.warnings) {
      log.warning("plugin {plugin}: {warning}", { plugin: plugin.name, warning });
    }
    const refusals = [...compiled.refusals, ...(await checkGrantSymlinks(compiled))];
    throwIfRefused({ plugin, refusals });
    const override = config.plugins[plugin.name];
    const settings = {
      startTimeoutMs: override?.start_timeout_ms ?? config.defaults.start_timeout_ms,
      restart: { ...config.defaults.restart, ...override?.restart },
      stopGraceMs: config.defaults.stop_grace_ms,
    };
    // One log budget for all instances and restarts of this plugin.
    const logBudget = pluginLogBudget(plugin.name, config, this.metrics);
    const [bin, ...prefix] = ctx.setpriv
      ? [ctx.setpriv, "--pdeathsig", "KILL", "--", ctx.denoBin]
      : [ctx.denoBin];
    // The process service's children see the plugin's declared env (nothing of the host's)
    // and, like the plugin, die with the host.
    const childEnv = Object.fromEntries(
      plugin.manifest.capabilities.env.flatMap((name) =>
        compiled.env[name] === undefined ? [] : [[name, compiled.env[name]!]]
      ),
    );
    // Children start in, and call HOME, an empty folder the plugin cannot write: programs read
    // configuration (and so code) from both.
    const childHome = join(config.dirs.data, "process", plugin.name);
    if (plugin.manifest.capabilities.process.length > 0) {
      await Deno.mkdir(childHome, { recursive: true, mode: 0o555 });
    }
    const childPrefix = [
      ...(ctx.setsid ? [ctx.setsid] : []),
      ...(ctx.setpriv ? [ctx.setpriv, "--pdeathsig", "KILL", "--"] : []),
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
          await checkModuleGraph(plugin, {
            denoBin: ctx.denoBin,
            importMapPath: ctx.importMapPath,
            allowed: ctx.sdkFiles,
            denoDir: denoCacheDir,
            signal,
          });
          await this.#verifyIntegrity(plugin, signal);
          // One per process: its children die with it (crash, stop or restart).
          const processes = new ProcessService({
            plugin: plugin.name,
            capabilities: plugin.manifest.capabilities.process,
            cwd: childHome,
            dataDir: sandboxCtx.dataDir,
            commands: compiled.commands,
            env: childEnv,
            prefix: childPrefix,
            processGroups: ctx.setsid !== undefined,
            forbiddenRoots: [config.dirs.plugins, config.dirs.data],
          });
          const started = PluginProcess.start({
            name: plugin.name,
            bin: bin!,
            args: [...prefix, ...compiled.argv],
            env: compiled.env,
            cwd: plugin.dir,
            protocolVersion: plugin.manifest.handshake.protocol_version,
            version: plugin.manifest.plugin.version,
            startTimeoutMs: settings.startTimeoutMs,
            maxLineBytes: config.defaults.max_line_bytes,
            stopGraceMs: settings.stopGraceMs,
            signal,
            handlers: processes.handlers,
            onExit: () => processes.close(),
            logBudget,
          });
          started.then(() => processes.open(), () => processes.close());
          return await started;
        },
        onStateChange: (state, detail) => {
          log.info("plugin {plugin} is {state}", {
            plugin: plugin.name,
            ...(policy.instances > 1 ? { instance: index } : {}),
            state,
            restarts: detail.restarts,
          });
          this.#emit("state", {
            plugin: plugin.name,
            instance: index,
            state,
            restarts: detail.restarts,
          });
        },
      });
    const supervisors = Array.from({ length: policy.instances }, (_, i) => makeSupervisor(i));
    const started = await Promise.allSettled(supervisors.map((s) => s.start()));
    const failed = started.find((r) => r.status === "rejected");
    if (failed) {
      await Promise.allSettled(supervisors.map((s) => s.stop()));
      throw failed.reason;
    }
    let instances: InstanceSet | undefined;
    let pipeline: CallPipeline;
    try {
      instances = new InstanceSet({
        plugin: plugin.name,
        endpoints: supervisors,
        policy,
        onHealthFailure: () => this.#healthFailures.inc([plugin.name]),
      });
      pipeline = new CallPipeline({ policy, instances, metrics: this.metrics });
    } catch (e) {
      // Nothing may be left running for a plugin that is not kept.
      await instances?.close();
      await Promise.allSettled(supervisors.map((s) => s.stop()));
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
    this.#approved.set(plugin.name, compiled);
    return { compiled, methods, supervisors, instances, pipeline };
  }

  /**
   * Checks the plugin folder (every file and symlink but the manifest and the checksum file,
   * exactly as `plugins verify`) against `<entrypoint>.sha256` and `security.checksum` when the
   * plugin has either (or `security.require_checksums` is on), hashing its files in the pool.
   * A signed plugin's digest is remembered: a later change batch compares against it.
   */
  async #verifyIntegrity(plugin: PluginDescriptor, signal: AbortSignal): Promise<void> {
    const required = this.config.security.require_checksums;
    const declared = plugin.manifest.security.checksum !== undefined ||
      await Deno.stat(checksumFilePath(plugin)).then(() => true, () => false);
    if (!required && !declared) return;
    // With the pool off, a one-worker pool hashes and goes away.
    await using temporary = this.#pool ? undefined : new WorkerPool({ maxWorkers: 1 });
    const result = await verifyPlugin(this.#pool ?? temporary!, plugin, { signal });
    assertVerified(result, { required });
    if (result.status === "ok") this.#verified.set(plugin, result.actual);
    log.info("plugin {plugin}: code matches its checksum {sha256}", {
      plugin: plugin.name,
      sha256: result.actual,
    });
  }

  /**
   * When a change batch leaves `current` serving (refused, held, or not replaced), stops it if
   * its folder no longer verifies: it could still `import()` a changed file. That is when the
   * reload failed with `CHECKSUM_MISMATCH`, or when the running version was verified against a
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
    let error: IntegrityError | undefined;
    if (reloadError instanceof IntegrityError && reloadError.code === "CHECKSUM_MISMATCH") {
      error = reloadError;
    } else {
      const verified = this.#verified.get(current.plugin);
      if (verified === undefined) return false;
      try {
        await using temporary = this.#pool ? undefined : new WorkerPool({ maxWorkers: 1 });
        const now = await digestPlugin(this.#pool ?? temporary!, current.plugin);
        if (now.hex !== verified) {
          error = new IntegrityError(
            "CHECKSUM_MISMATCH",
            `plugin ${current.plugin.name}: its folder changed since its code was verified ` +
              `(sha256 ${verified} then, ${now.hex} now) and the change was not loaded; the ` +
              "running version is stopped, as it could load the changed files. If the change " +
              `is intended, run \`plugsconc plugins checksum ${current.plugin.name}\``,
            { plugin: current.plugin.name, details: { expected: verified, actual: now.hex } },
          );
        }
      } catch (e) {
        if (!(e instanceof IntegrityError)) throw e;
        error = e;
      }
    }
    if (error === undefined) return false;
    const name = current.plugin.name;
    log.error("plugin {plugin} stopped: {message}", {
      plugin: name,
      code: error.code,
      message: error.message,
      paths,
    });
    // Failed first, so that no new call reaches it while it stops.
    this.#entries.set(name, {
      plugin: current.plugin,
      policy: current.policy,
      compiled: current.compiled,
      error,
    });
    await stopEntry(current);
    this.#emit("change", { plugin: name, dir, outcome: "stopped", paths, reason: error.message });
    return true;
  }

  /**
   * Calls `method` of plugin `name`. The timeout is `options.timeoutMs`, else
   * `plugins.<name>.timeout_ms`, else the manifest's `methods.<m>.timeout_ms` or
   * `resources.timeout_ms`, else `defaults.timeout_ms`; on expiry the plugin gets `$/cancel`
   * and the call rejects with `PluginTimeoutError`.
   *
   * @throws {PluginError} subclasses: not found, unavailable, timeout, crashed, call failed
   */
  async call(
    name: string,
    method: string,
    params?: unknown,
    options: CallOptions = {},
  ): Promise<unknown> {
    const entry = this.#entries.get(name);
    if (entry === undefined) {
      throw new PluginNotFoundError(name, undefined, [...this.#entries.keys()]);
    }
    if (method.startsWith("$/") || method.startsWith("host/")) {
      // The protocol's own methods ($/health, $/shutdown, ...) are the host's, not callers'.
      throw new PluginNotFoundError(name, method, [...(entry.methods ?? [])].sort());
    }
    const pipeline = entry.pipeline;
    if (pipeline === undefined || entry.error) {
      throw new PluginUnavailableError(
        name,
        "failed",
        entry.error?.message ?? "it was not started",
        {
          method,
          cause: entry.error,
        },
      );
    }
    // Checked here, not by the plugin: an unknown name never reaches the pipeline (and its
    // metrics, whose series per method would otherwise grow with every name a client tries).
    if (entry.methods !== undefined && !entry.methods.has(method)) {
      throw new PluginNotFoundError(name, method, [...entry.methods].sort());
    }
    return await pipeline.call(method, params, {
      signal: options.signal,
      timeoutMs: this.timeoutFor(name, method, options.timeoutMs),
    });
  }

  /** The effective timeout of `name.method` in ms. */
  timeoutFor(name: string, method: string, override?: number): number {
    const policy = this.#entries.get(name)?.policy;
    return override ?? (policy ? timeoutOf(policy, method) : this.config.defaults.timeout_ms);
  }

  /** Every plugin the host manages, with state, pid, restarts, health and grants. */
  plugins(): PluginInfo[] {
    return [...this.#entries.values()].map((e) => {
      const first = e.supervisors?.[0];
      const failed = e.supervisors?.find((x) => x.state === "failed");
      return {
        name: e.plugin.name,
        version: e.plugin.manifest.plugin.version,
        state: e.error ? "failed" : first?.state ?? "stopped",
        pid: first?.state === "ready" ? first.process?.pid : undefined,
        restarts: (e.supervisors ?? []).reduce((n, x) => n + x.restarts, 0),
        dir: e.plugin.dir,
        methods: first?.process?.ready.methods ?? [],
        grants: e.compiled ? summarizeGrants(e.compiled) : "",
        error: e.error?.message ??
          (failed
            ? `${failed.restarts} restarts, then ${describeFailure(failed.lastError)}`
            : undefined),
        health: e.error ? "offline" : e.instances?.health ?? "offline",
        instances: instanceInfo(e),
        breaker: e.pipeline?.breakerState ?? "closed",
      };
    });
  }

  /**
   * The host's health: each plugin's (from its instances' `$/health` answers and states) and
   * the worst of them. A plugin without a `health` handler is healthy while it answers.
   */
  health(): HostHealth {
    const plugins: Record<
      string,
      { status: HealthStatus; instances: InstanceInfo[]; error?: string }
    > = {};
    const rank: Record<HealthStatus, number> = {
      healthy: 0,
      degraded: 1,
      unhealthy: 2,
      offline: 3,
    };
    let status: HealthStatus = "healthy";
    for (const e of this.#entries.values()) {
      const s: HealthStatus = e.error ? "offline" : e.instances?.health ?? "offline";
      plugins[e.plugin.name] = {
        status: s,
        instances: instanceInfo(e),
        ...(e.error ? { error: e.error.message } : {}),
      };
      if (rank[s] > rank[status]) status = s;
    }
    return { status, plugins };
  }

  /** The effective call policy of a plugin (config defaults, overrides, manifest). */
  policy(name: string): PluginPolicy | undefined {
    return this.#entries.get(name)?.policy;
  }

  /** The compiled sandbox of a plugin (after start), for inspection. */
  sandbox(name: string): CompiledSandbox | undefined {
    return this.#entries.get(name)?.compiled;
  }

  /** The supervisor of a plugin, for advanced use and tests. */
  supervisor(name: string): PluginSupervisor | undefined {
    return this.#entries.get(name)?.supervisors?.[0];
  }

  /** Every instance's supervisor of a plugin (`instances: N`), for advanced use and tests. */
  supervisors(name: string): readonly PluginSupervisor[] {
    return this.#entries.get(name)?.supervisors ?? [];
  }

  /** Stops every plugin (drain, `$/shutdown`, then force). Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await this.#watcher?.close();
      // Dependents before what they depend on: a plugin never outlives one it calls into.
      const results: PromiseSettledResult<unknown>[] = [];
      for (const level of stopLevels([...this.#entries.values()])) {
        results.push(...await Promise.allSettled(level.map((e) => stopEntry(e))));
      }
      // Jobs already running finish; the whole stop is bounded by app.shutdown_timeout_ms.
      results.push(
        ...await Promise.allSettled([
          this.#pool?.stop({ timeoutMs: this.config.app.shutdown_timeout_ms }),
        ]),
      );
      if (this.#ownsLogs) this.#logs?.close();
      const errors = results.flatMap((r) => r.status === "rejected" ? [r.reason] : []);
      if (errors.length > 0) throw new AggregateError(errors, "some plugins did not stop cleanly");
    })();
    return this.#stopping;
  }

  /** Same as {@link PluginHost.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Entries grouped for stopping: first those nothing running depends on, then what those
 * depended on, and so on (each group can stop in parallel).
 */
function stopLevels(entries: readonly Entry[]): Entry[][] {
  const byName = new Map(entries.map((e) => [e.plugin.name, e]));
  const depth = new Map<string, number>();
  // depth = 1 + the deepest dependent; a plugin nobody depends on has depth 0.
  const visit = (e: Entry, d: number, seen: Set<string>) => {
    if ((depth.get(e.plugin.name) ?? -1) >= d || seen.has(e.plugin.name)) return;
    depth.set(e.plugin.name, d);
    seen.add(e.plugin.name);
    for (const dep of e.plugin.manifest.depends_on) {
      const de = byName.get(dep);
      if (de) visit(de, d + 1, seen);
    }
    seen.delete(e.plugin.name);
  };
  for (const e of entries) visit(e, 0, new Set());
  const levels: Entry[][] = [];
  for (const e of entries) (levels[depth.get(e.plugin.name) ?? 0] ??= []).push(e);
  return levels.filter((l) => l !== undefined);
}

/** Stops a plugin's health checks and every instance (drain, then polite-then-forced stop). */
async function stopEntry(e: Entry): Promise<void> {
  await e.instances?.close();
  const results = await Promise.allSettled((e.supervisors ?? []).map((s) => s.stop()));
  const bad = results.find((r) => r.status === "rejected");
  if (bad) throw bad.reason;
}

function instanceInfo(e: Entry): InstanceInfo[] {
  return (e.instances?.instances ?? []).map((i) => ({
    index: i.index,
    state: i.endpoint.state,
    pid: i.endpoint.state === "ready" ? i.endpoint.incarnation : undefined,
    restarts: i.endpoint.restarts,
    health: i.health,
    message: i.healthMessage,
    inFlight: i.inFlight,
  }));
}

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

async function loadHostConfig(options: PluginHostOptions): Promise<LoadedConfig> {
  if (options.config !== undefined) {
    const c = options.config as Partial<LoadedConfig>;
    if (c.config !== undefined && c.fromEnv !== undefined) return c as LoadedConfig;
    return resolveConfig(options.config, { baseDir: options.baseDir });
  }
  return await loadConfig(options.configPath ?? "config.yaml", {
    optional: options.configPath === undefined,
  });
}

/** `names` and everything they depend on; unknown names are an error. */
function closure(
  plugins: readonly PluginDescriptor[],
  names: readonly string[],
): PluginDescriptor[] {
  const byName = new Map(plugins.map((p) => [p.name, p]));
  const out = new Map<string, PluginDescriptor>();
  const add = (name: string) => {
    if (out.has(name)) return;
    const p = byName.get(name);
    if (p === undefined) throw new PluginNotFoundError(name, undefined, [...byName.keys()]);
    out.set(name, p);
    for (const d of p.manifest.depends_on) if (byName.has(d)) add(d);
  };
  for (const n of names) add(n);
  return [...out.values()];
}

/** `read: a, b; write: c; net: h:443; env: TZ; process: exec /bin/x` (or `none`). */
export function summarizeGrants(compiled: CompiledSandbox): string {
  const g = compiled.grants;
  const parts = ([
    ["read", g.read],
    ["write", g.write],
    ["net", g.net],
    ["env", g.env],
    ["process", g.process],
  ] as const).filter(([, v]) => v.length > 0).map(([k, v]) => `${k}: ${v.join(", ")}`);
  return parts.length > 0 ? parts.join("; ") : "none";
}
