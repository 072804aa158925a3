import { getLogger } from "@logtape/logtape";
import {
  attachAuditTrail,
  type AuditTrail,
  type PermissionReport,
  permissionReport,
} from "../audit/mod.ts";
import type { Config, LoadedConfig } from "../config/mod.ts";
import { PlugsconcError } from "../errors/mod.ts";
import { LogStore } from "../logs/mod.ts";
import { MetricsRegistry } from "../metrics/mod.ts";
import { effectivePolicy, type PluginPolicy, timeoutOf } from "../pipeline/mod.ts";
import { poolOptionsFromConfig, WorkerPool } from "../pool/mod.ts";
import {
  discoverPlugins,
  type Discovery,
  planStartOrder,
  type PluginDescriptor,
} from "../manifest/mod.ts";
import { type PluginSupervisor, streamRequired } from "../runtime/mod.ts";
import type { CompiledSandbox } from "../sandbox/mod.ts";
import { VERSION } from "../version.ts";
import { type ChangeBatch, PluginWatcher } from "../watch/mod.ts";
import { dependencyClosure } from "./_dependency_closure.ts";
import type { Entry } from "./_entry.ts";
import { hostHealth, pluginInfo } from "./_entry_info.ts";
import { HostListeners } from "./_host_listeners.ts";
import { Launcher } from "./_launcher.ts";
import { RemoteLauncher } from "../remote/remote_launcher.ts";
import { loadHostConfig } from "./_load_host_config.ts";
import { PluginIntegrity } from "./_plugin_integrity.ts";
import { Reloader } from "./_reloader.ts";
import { registerRuntimeMetrics } from "./_runtime_metrics.ts";
import { startInOrder } from "./_start_in_order.ts";
import { stopEntry, stopLevels } from "./_stop_order.ts";
import type { CallOptions } from "./call_options.ts";
import type { PluginStream, StreamOptions } from "./plugin_stream.ts";
import { openStream } from "./_stream_call.ts";
import type { PluginHostEvents } from "./host_events.ts";
import type { HostHealth } from "./host_health.ts";
import { type HostRuntime, prepareRuntime } from "./host_runtime.ts";
import type { PluginHostOptions } from "./plugin_host_options.ts";
import type { PluginInfo } from "./plugin_info.ts";
import { callTarget } from "./_call_target.ts";
import { openAudit, recordHostStart } from "./_host_audit.ts";
import { makePluginClient, type PluginClientShape } from "./plugin_client.ts";

const log = getLogger(["plugsconc", "host"]);

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
  readonly #pool: WorkerPool | undefined;
  #logs: LogStore | undefined;
  readonly #ownsLogs: boolean;
  /**
   * Metrics of the pipeline (calls, failures, latency, breaker, retries, rate limit), the
   * runtime (restarts, state, health) and the pool; `host.metrics.prometheus()` for text.
   */
  readonly metrics: MetricsRegistry = new MetricsRegistry();
  readonly #events = new HostListeners();
  readonly #healthFailures = this.metrics.counter(
    "plugsconc_health_check_failures_total",
    "Failed $/health checks.",
    ["plugin"],
  );
  readonly #launcher: Launcher;
  readonly #reloader: Reloader;
  /** Remote plugins (`placement: remote`): NATS connection and endpoints. */
  readonly #remote: RemoteLauncher;
  /** The audit trail this host appends to (`dirs.data/audit.db`), if it could be opened. */
  readonly audit: AuditTrail | undefined;
  readonly #detachAudit: () => void;

  private constructor(
    loaded: LoadedConfig,
    discovery: Discovery,
    entries: Map<string, Entry>,
    logStore: LogStore | undefined,
    auditActor = "host",
  ) {
    this.config = loaded.config;
    this.audit = openAudit(loaded.config, auditActor);
    this.#detachAudit = this.audit ? attachAuditTrail(this.audit) : () => {};
    if (this.audit) recordHostStart(this.audit, loaded);
    this.configFile = loaded.file;
    this.discovery = discovery;
    this.#entries = entries;
    this.#logs = logStore;
    this.#ownsLogs = logStore === undefined;
    if (loaded.config.worker_pool.enabled) {
      this.#pool = new WorkerPool(poolOptionsFromConfig(loaded.config.worker_pool));
    }
    const integrity = new PluginIntegrity(this.config, this.#pool);
    const emit = this.#events.emit;
    this.#remote = new RemoteLauncher({
      config: this.config,
      configFile: this.configFile,
      metrics: this.metrics,
      healthFailures: this.#healthFailures,
    });
    this.#launcher = new Launcher({
      config: this.config,
      configFile: this.configFile,
      metrics: this.metrics,
      healthFailures: this.#healthFailures,
      integrity,
      approved: this.#approved,
      emit,
      audit: this.audit,
      permissionAudit: (p) =>
        this.config.plugins[p.name]?.permission_audit ?? this.config.security.permission_audit,
      plugins: {
        call: (name, method, params, options) => this.call(name, method, params, options),
        timeoutFor: (name, method) => this.timeoutFor(name, method),
      },
    });
    this.#reloader = new Reloader({
      config: this.config,
      configFile: this.configFile,
      entries,
      approved: this.#approved,
      integrity,
      emit,
      stopping: () => this.#stopping !== undefined,
      runtime: async () => this.#runtime ??= await prepareRuntime(this.config),
      launch: (plugin, policy, runtime) => this.#launch(plugin, policy, runtime),
    });
    registerRuntimeMetrics(this.metrics, { entries, pool: this.#pool });
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
          return host.#reloader.queue(batch);
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
    for (const batch of early) void host.#reloader.queue(batch);
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
    const wanted = options.only ? dependencyClosure(enabled, options.only) : enabled;
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
    const host = new PluginHost(loaded, discovery, entries, options.logStore, options.auditActor);
    host.#started = host.#startAll(ordered);
    // Change batches wait for the start, then run one at a time: two folders claiming one
    // name, or a reload racing a removal, are decided in order.
    host.#reloader.waitFor(host.#started);
    return host;
  }

  async #startAll(ordered: readonly PluginDescriptor[]): Promise<void> {
    if (ordered.length === 0) return;
    const runtime = await prepareRuntime(this.config);
    this.#runtime = runtime;
    await startInOrder(ordered, {
      entries: this.#entries,
      launch: (plugin, policy) => this.#launch(plugin, policy, runtime),
    });
  }

  /** A local plugin under supervisors, a remote one over NATS, or local with NATS overflow. */
  async #launch(plugin: PluginDescriptor, policy: PluginPolicy, runtime: HostRuntime) {
    if (this.#remote.handles(plugin)) return await this.#remote.launch(plugin, policy, runtime);
    const local = await this.#launcher.launch(plugin, policy, runtime);
    return this.#remote.overflows(plugin)
      ? await this.#remote.withOverflow(plugin, policy, local)
      : local;
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
    return this.#events.on(type, listener);
  }

  /** The folder being watched for changes, if any. */
  get watchedFolder(): string | undefined {
    return this.#watcher?.root;
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
    const { entry, pipeline } = callTarget(this.#entries, name, method, params);
    if (entry.plugin.manifest.methods[method]?.stream) throw streamRequired(name, method);
    return await pipeline.call(method, params, {
      signal: options.signal,
      timeoutMs: this.timeoutFor(name, method, options.timeoutMs),
      ...(options.chain === undefined ? {} : { chain: [...options.chain, name] }),
    });
  }

  /**
   * A typed client of plugin `name`: `client.m(params, options)` is `host.call(name, "m",
   * params, options)`. `T` is the interface `plugsconc plugins types <name>` prints.
   *
   * @example
   * ```ts
   * const cat = host.client<CatPlugin>("cat");
   * const sound: string = await cat.speak({ loud: true });
   * ```
   */
  client<T extends PluginClientShape<T>>(name: string): T {
    return makePluginClient<T>((method, params, options) =>
      this.call(name, method, params, options)
    );
  }

  /**
   * Streams `method` of plugin `name` (`methods.<m>.stream: true`) through its pipeline; see
   * {@linkcode PluginStream}. `options.timeoutMs` is the whole stream's deadline.
   */
  stream(name: string, method: string, params?: unknown, options?: StreamOptions): PluginStream {
    const timeoutMs = this.timeoutFor(name, method, options?.timeoutMs);
    return openStream(this.#entries, name, method, params, { ...options, timeoutMs });
  }

  /** The effective timeout of `name.method` in ms. */
  timeoutFor(name: string, method: string, override?: number): number {
    const policy = this.#entries.get(name)?.policy;
    return override ?? (policy ? timeoutOf(policy, method) : this.config.defaults.timeout_ms);
  }

  /** Every plugin the host manages, with state, pid, restarts, health and grants. */
  plugins(): PluginInfo[] {
    return [...this.#entries.values()].map(pluginInfo);
  }

  /**
   * The host's health: each plugin's (from its instances' `$/health` answers and states) and
   * the worst of them. A plugin without a `health` handler is healthy while it answers.
   */
  health(): HostHealth {
    return hostHealth(this.#entries.values());
  }

  /** The effective call policy of a plugin (config defaults, overrides, manifest). */
  policy(name: string): PluginPolicy | undefined {
    return this.#entries.get(name)?.policy;
  }

  /** The compiled sandbox of a plugin (after start), for inspection. */
  sandbox(name: string): CompiledSandbox | undefined {
    return this.#entries.get(name)?.compiled;
  }

  /**
   * Which of a plugin's declared grants its runtime used (checks, last use) and which checks
   * it was denied, over every run the audit trail recorded (totals are written every second and
   * at each process exit). `undefined`: not started, or no audit trail.
   */
  permissions(name: string): PermissionReport | undefined {
    const compiled = this.#entries.get(name)?.compiled;
    if (compiled === undefined || this.audit === undefined) return undefined;
    return permissionReport(compiled, this.audit.usage(name), this.audit.gaps(name));
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
      results.push(...await Promise.allSettled([this.#remote.close()]));
      // Jobs already running finish; the whole stop is bounded by app.shutdown_timeout_ms.
      results.push(
        ...await Promise.allSettled([
          this.#pool?.stop({ timeoutMs: this.config.app.shutdown_timeout_ms }),
        ]),
      );
      await this.#launcher.settleAudits();
      if (this.#ownsLogs) this.#logs?.close();
      this.#detachAudit();
      this.audit?.close();
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
