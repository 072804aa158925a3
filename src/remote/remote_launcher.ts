import { dirname } from "node:path";
import { getLogger } from "@logtape/logtape";
import type { Config } from "../config/mod.ts";
import type { PluginDescriptor } from "../manifest/mod.ts";
import type { Counter, MetricsRegistry } from "../metrics/mod.ts";
import { CallPipeline, InstanceSet, type PluginPolicy } from "../pipeline/mod.ts";
import type { PluginEndpoint } from "../runtime/mod.ts";
import { type CompiledSandbox, compileSandbox } from "../sandbox/mod.ts";
import { type HostRuntime, sandboxContext } from "../host/host_runtime.ts";
import { OverflowEndpoint } from "./overflow_endpoint.ts";
import { RemoteEndpoint } from "./remote_endpoint.ts";
import { RemoteLink } from "./remote_link.ts";
import { placementOf } from "./placement.ts";

const log = getLogger(["plugsconc", "remote"]);

/** What a remote plugin's entry holds (the host's `Running`, without processes). */
export interface RemoteRunning {
  readonly compiled: CompiledSandbox;
  readonly methods: ReadonlySet<string>;
  readonly supervisors: readonly never[];
  readonly instances: InstanceSet;
  readonly pipeline: CallPipeline;
}

/** Options for {@link RemoteLauncher}. */
export interface RemoteLauncherOptions {
  readonly config: Config;
  readonly configFile: string | undefined;
  readonly metrics: MetricsRegistry;
  readonly healthFailures: Counter;
}

/**
 * Starts the remote plugins of a host: one shared NATS connection (opened at the first remote
 * plugin), and per plugin a {@linkcode RemoteEndpoint} behind the same `InstanceSet` and
 * `CallPipeline` a local plugin has. The manifest here sets the methods, their idempotency and
 * the policy; its grants are compiled for display only (the worker enforces its own copy).
 */
export class RemoteLauncher implements AsyncDisposable {
  readonly #o: RemoteLauncherOptions;
  #link: Promise<RemoteLink> | undefined;
  readonly #endpoints = new Set<RemoteEndpoint>();

  /** @param options see {@link RemoteLauncherOptions} */
  constructor(options: RemoteLauncherOptions) {
    this.#o = options;
  }

  /** Whether `plugin` runs remotely. */
  handles(plugin: PluginDescriptor): boolean {
    return placementOf(this.#o.config, plugin.name) === "remote";
  }

  /** Whether `plugin` runs locally with remote overflow. */
  overflows(plugin: PluginDescriptor): boolean {
    return placementOf(this.#o.config, plugin.name) === "overflow";
  }

  /**
   * Puts a started local plugin behind {@linkcode OverflowEndpoint}s: the same supervisors,
   * a new instance set and pipeline whose calls overflow to NATS workers. When NATS cannot be
   * reached the plugin keeps serving locally (and says so in the log).
   */
  async withOverflow<
    T extends {
      readonly supervisors: readonly PluginEndpoint[];
      readonly instances: InstanceSet;
      readonly pipeline: CallPipeline;
    },
  >(plugin: PluginDescriptor, policy: PluginPolicy, local: T): Promise<T> {
    let link: RemoteLink;
    try {
      link = await this.#connect();
    } catch (e) {
      log.warning("plugin {plugin}: no remote overflow, it serves locally only: {error}", {
        plugin: plugin.name,
        error: (e as Error).message,
      });
      return local;
    }
    await local.instances.close();
    const remote = new RemoteEndpoint(plugin.name, link);
    this.#endpoints.add(remote);
    const after = this.#o.config.plugins[plugin.name]?.overflow_after ?? 4;
    const instances = new InstanceSet({
      plugin: plugin.name,
      endpoints: local.supervisors.map((s) => new OverflowEndpoint(s, remote, after)),
      policy,
      onHealthFailure: () => this.#o.healthFailures.inc([plugin.name]),
    });
    const pipeline = new CallPipeline({ policy, instances, metrics: this.#o.metrics });
    const workers = await remote.discover().catch(() => []);
    instances.startHealthChecks();
    log.info("plugin {plugin} overflows to {count} NATS worker(s) after {after} calls in flight", {
      plugin: plugin.name,
      count: workers.length,
      after,
    });
    return { ...local, instances, pipeline };
  }

  #connect(): Promise<RemoteLink> {
    const c = this.#o.config;
    this.#link ??= RemoteLink.connect({
      nats: c.remote.nats,
      baseDir: this.#o.configFile ? dirname(this.#o.configFile) : Deno.cwd(),
      maxPayloadBytes: c.defaults.max_line_bytes,
      acceptTimeoutMs: c.remote.accept_timeout_ms,
      probeIntervalMs: c.remote.probe_interval_ms,
    });
    // A failed connect is retried at the next launch (a reload), not cached.
    this.#link.catch(() => (this.#link = undefined));
    return this.#link;
  }

  /** Connects (once) and builds the plugin's pipeline over a remote endpoint. */
  async launch(
    plugin: PluginDescriptor,
    policy: PluginPolicy,
    runtime: HostRuntime,
  ): Promise<RemoteRunning> {
    const { config, configFile, metrics } = this.#o;
    const compiled = compileSandbox(plugin, sandboxContext(config, configFile, plugin, runtime));
    const link = await this.#connect();
    const endpoint = new RemoteEndpoint(plugin.name, link);
    this.#endpoints.add(endpoint);
    const instances = new InstanceSet({
      plugin: plugin.name,
      endpoints: [endpoint],
      policy,
      onHealthFailure: () => this.#o.healthFailures.inc([plugin.name]),
    });
    const pipeline = new CallPipeline({ policy, instances, metrics });
    const workers = await endpoint.discover().catch(() => []);
    instances.startHealthChecks();
    log.info("plugin {plugin} {version} is remote: {count} worker(s) on NATS", {
      plugin: plugin.name,
      version: plugin.manifest.plugin.version,
      count: workers.length,
      workers: workers.map((w) => w.id),
    });
    const methods = new LiveMethods(endpoint, [
      ...Object.keys(plugin.manifest.methods),
      ...workers.flatMap((w) => w.methods),
    ]);
    return { compiled, methods, supervisors: [], instances, pipeline };
  }

  /** Stops every remote endpoint and closes the connection. Idempotent. */
  async close(): Promise<void> {
    const grace = this.#o.config.defaults.stop_grace_ms;
    await Promise.allSettled([...this.#endpoints].map((e) => e.stop(grace)));
    const link = this.#link;
    this.#link = undefined;
    await (await link?.catch(() => undefined))?.close();
  }

  /** Same as {@link RemoteLauncher.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * The manifest's methods plus those the workers announce now: a worker that joins later with
 * more methods is callable without a host restart.
 */
class LiveMethods extends Set<string> {
  readonly #endpoint: RemoteEndpoint;

  constructor(endpoint: RemoteEndpoint, methods: Iterable<string>) {
    super(methods);
    this.#endpoint = endpoint;
  }

  override has(method: string): boolean {
    return super.has(method) || this.#endpoint.workers.some((w) => w.methods.includes(method));
  }
}
