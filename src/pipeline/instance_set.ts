import { getLogger } from "@logtape/logtape";
import type { PluginEndpoint } from "../runtime/mod.ts";
import { clip, quote } from "../runtime/record_cap.ts";
import { Bulkhead } from "./bulkhead.ts";
import type { PluginPolicy } from "./policy.ts";

/**
 * The most characters of a health message kept (stored as `healthMessage`, logged, and put in
 * the recycle reason): it comes from the plugin, outside its log budget, so a longer one is cut
 * where it is received and marked with its length.
 */
export const MAX_HEALTH_MESSAGE = 1024;

/** Health of an instance or a plugin, as go-plugins reports it. */
export type HealthStatus = "healthy" | "degraded" | "unhealthy" | "offline";

/** One process of a plugin, with what the pipeline and the health checks know of it. */
export interface Instance {
  /** 0-based. */
  readonly index: number;
  /** Where its calls go (a local process under its supervisor, today). */
  readonly endpoint: PluginEndpoint;
  /** Max in flight and queue of this instance. */
  readonly bulkhead: Bulkhead;
  /** Calls on it now (queued in its bulkhead included). */
  inFlight: number;
  /** Last health reported (`offline` while it is not running). */
  readonly health: HealthStatus;
  /** The message of the last health answer or failure. */
  readonly healthMessage: string | undefined;
  /** Failed health checks in a row. */
  readonly healthFailures: number;
}

interface MutableInstance extends Instance {
  reported: Exclude<HealthStatus, "offline">;
  healthMessage: string | undefined;
  healthFailures: number;
  incarnation: number | undefined;
}

/** Options for {@link InstanceSet}. */
export interface InstanceSetOptions {
  readonly plugin: string;
  readonly endpoints: readonly PluginEndpoint[];
  readonly policy: PluginPolicy;
  /** Called for every failed health check (metrics). */
  readonly onHealthFailure?: (instance: Instance) => void;
}

/**
 * The processes of one plugin: picks one for each call (round-robin or least-in-flight among
 * those running and not reported unhealthy), and checks each one's `$/health` every
 * `health.interval_ms`. An instance that answers `unhealthy`, or fails to answer, leaves the
 * rotation; after `health.failure_limit` failures in a row it is restarted, and it rejoins
 * once its new process is ready and reports healthy.
 */
export class InstanceSet implements AsyncDisposable {
  readonly plugin: string;
  readonly #policy: PluginPolicy;
  readonly #instances: MutableInstance[];
  readonly #log = getLogger(["plugsconc", "health"]);
  readonly #onHealthFailure: InstanceSetOptions["onHealthFailure"];
  #next = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #checking: Promise<void> | undefined;
  #closed = false;

  /** @param options see {@link InstanceSetOptions} */
  constructor(options: InstanceSetOptions) {
    if (options.endpoints.length === 0) {
      throw new RangeError("an instance set needs an endpoint");
    }
    this.plugin = options.plugin;
    this.#policy = options.policy;
    this.#onHealthFailure = options.onHealthFailure;
    const { max_in_flight, queue } = options.policy.bulkhead;
    this.#instances = options.endpoints.map((endpoint, index) => {
      const inst: MutableInstance = {
        index,
        endpoint,
        bulkhead: new Bulkhead(max_in_flight, queue),
        inFlight: 0,
        reported: "healthy",
        healthMessage: undefined,
        healthFailures: 0,
        incarnation: endpoint.incarnation,
        get health(): HealthStatus {
          if (endpoint.state !== "ready") return "offline";
          // A new process starts with a clean slate.
          if (endpoint.incarnation !== inst.incarnation) {
            inst.incarnation = endpoint.incarnation;
            inst.reported = "healthy";
            inst.healthFailures = 0;
            inst.healthMessage = undefined;
          }
          return inst.reported;
        },
      };
      return inst;
    });
  }

  /** Every instance. */
  get instances(): readonly Instance[] {
    return this.#instances;
  }

  /**
   * The plugin's health: `healthy` when every instance is, `offline` when none runs,
   * `unhealthy` when none that runs is serving, `degraded` otherwise.
   */
  get health(): HealthStatus {
    const all = this.#instances.map((i) => i.health);
    if (all.every((h) => h === "healthy")) return "healthy";
    if (all.every((h) => h === "offline")) return "offline";
    if (all.some((h) => h === "healthy" || h === "degraded")) return "degraded";
    return "unhealthy";
  }

  /**
   * The instance for the next call, or `undefined` when none is running and serving.
   * `exclude` is skipped unless it is the only choice (a retry after a failure there).
   */
  pick(exclude?: Instance): Instance | undefined {
    const list = this.#instances;
    const n = list.length;
    if (n === 1) return serving(list[0]!) ? list[0] : undefined;
    let fallback: Instance | undefined;
    if (this.#policy.balancer === "least-in-flight") {
      let best: Instance | undefined;
      for (const inst of list) {
        if (!serving(inst)) continue;
        if (inst === exclude) {
          fallback = inst;
          continue;
        }
        if (best === undefined || inst.inFlight < best.inFlight) best = inst;
      }
      return best ?? fallback;
    }
    for (let k = 0; k < n; k++) {
      const inst = list[(this.#next + k) % n]!;
      if (!serving(inst)) continue;
      if (inst === exclude) {
        fallback = inst;
        continue;
      }
      this.#next = (inst.index + 1) % n;
      return inst;
    }
    return fallback;
  }

  /** Starts the periodic health checks. */
  startHealthChecks(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setInterval(() => {
      this.#checking ??= this.checkHealth().finally(() => (this.#checking = undefined));
    }, this.#policy.health.interval_ms);
  }

  /** Runs one round of health checks now (every running instance, in parallel). */
  async checkHealth(): Promise<void> {
    await Promise.all(this.#instances.map((inst) => this.#checkOne(inst)));
  }

  async #checkOne(inst: MutableInstance): Promise<void> {
    const { timeout_ms, failure_limit } = this.#policy.health;
    if (inst.health === "offline") return;
    const incarnation = inst.endpoint.incarnation;
    let status: Exclude<HealthStatus, "offline">;
    let message: string | undefined;
    try {
      const answer = await inst.endpoint.health(timeout_ms) as {
        status?: unknown;
        message?: unknown;
      };
      const s = answer?.status;
      status = s === "healthy" || s === "degraded" || s === "unhealthy" ? s : "unhealthy";
      message = typeof answer?.message === "string"
        ? clip(answer.message, MAX_HEALTH_MESSAGE)
        : status === "unhealthy" && s !== "unhealthy"
        ? `it answered $/health with ${quote(answer)}`
        : undefined;
    } catch (e) {
      status = "unhealthy";
      // The error's text may carry the plugin's own (an error answer's message).
      message = clip(
        `no answer to $/health: ${e instanceof Error ? e.message : String(e)}`,
        MAX_HEALTH_MESSAGE,
      );
    }
    if (this.#closed || inst.endpoint.incarnation !== incarnation) return;
    const before = inst.reported;
    inst.reported = status;
    inst.healthMessage = message;
    if (status !== "unhealthy") {
      inst.healthFailures = 0;
      if (before !== status) {
        this.#log.info("plugin {plugin} instance {instance} is {status}", {
          plugin: this.plugin,
          instance: inst.index,
          status,
          message,
        });
      }
      return;
    }
    inst.healthFailures++;
    this.#onHealthFailure?.(inst);
    this.#log.warning(
      "plugin {plugin} instance {instance} failed a health check ({failures}/{limit}): {message}",
      {
        plugin: this.plugin,
        instance: inst.index,
        failures: inst.healthFailures,
        limit: failure_limit,
        message,
      },
    );
    if (inst.healthFailures >= failure_limit) {
      await inst.endpoint.recycle(
        `${inst.healthFailures} failed health checks in a row (health.failure_limit ${failure_limit}): ${message}`,
      );
    }
  }

  /** Stops the health checks (the endpoints are the host's to stop). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#checking;
  }

  /** Same as {@link InstanceSet.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function serving(inst: Instance): boolean {
  const h = inst.health;
  return h === "healthy" || h === "degraded";
}
