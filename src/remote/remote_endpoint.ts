import {
  type EndpointCallOptions,
  type PluginEndpoint,
  type PluginState,
  PluginUnavailableError,
} from "../runtime/mod.ts";
import type { RemoteLink, RemoteWorkerInfo } from "./remote_link.ts";

/**
 * A remote plugin as the call pipeline sees it: one {@linkcode PluginEndpoint} standing for
 * every worker that serves the plugin on NATS (NATS spreads the calls over them in the
 * plugin's queue group). It is `ready` while the host's NATS connection is up; with no worker
 * a call fails at once with `PLUGIN_UNAVAILABLE` (NATS answers "no responders"). Its health
 * check asks `$SRV.INFO` who serves the plugin: no worker is `unhealthy`.
 */
export class RemoteEndpoint implements PluginEndpoint {
  /** The plugin's name. */
  readonly plugin: string;
  readonly #link: RemoteLink;
  #workers: readonly RemoteWorkerInfo[] = [];
  #stopped = false;
  #inFlight = 0;

  /** @param plugin its name @param link the host's NATS connection */
  constructor(plugin: string, link: RemoteLink) {
    this.plugin = plugin;
    this.#link = link;
  }

  /** `ready` while connected; `stopped` after {@linkcode RemoteEndpoint.stop}. */
  get state(): PluginState {
    if (this.#stopped) return "stopped";
    return this.#link.connected ? "ready" : "backoff";
  }

  /** Changes at every reconnect, so health kept from before is dropped. */
  get incarnation(): number | undefined {
    return this.state === "ready" ? this.#link.generation : undefined;
  }

  /** Workers restart on their own machines: the host counts none. */
  get restarts(): number {
    return 0;
  }

  /** The workers found by the last discovery (`$SRV.INFO`). */
  get workers(): readonly RemoteWorkerInfo[] {
    return this.#workers;
  }

  /** Refreshes {@linkcode RemoteEndpoint.workers} now. */
  async discover(timeoutMs = 500): Promise<readonly RemoteWorkerInfo[]> {
    this.#workers = await this.#link.workers(this.plugin, timeoutMs);
    return this.#workers;
  }

  whenReady(signal?: AbortSignal): Promise<unknown> {
    if (this.state === "ready") return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return Promise.reject(this.#unavailable());
  }

  async call(
    method: string,
    params: unknown,
    options: EndpointCallOptions,
  ): Promise<unknown> {
    if (this.state !== "ready") throw this.#unavailable(method);
    this.#inFlight++;
    try {
      return await this.#link.call(this.plugin, method, params, options);
    } finally {
      this.#inFlight--;
    }
  }

  /** Notifications are not sent to remote plugins (no worker is chosen for them). */
  notify(): void {}

  async health(timeoutMs: number): Promise<unknown> {
    const workers = await this.discover(Math.min(timeoutMs, 1000));
    if (workers.length === 0) {
      return { status: "unhealthy", message: "no worker serves it on NATS (plugsconc serve)" };
    }
    return {
      status: "healthy",
      message: `${workers.length} worker(s): ${workers.map((w) => w.id).join(", ")}`,
    };
  }

  /** Nothing to restart here: workers restart their plugins on their own machines. */
  async recycle(): Promise<void> {}

  /** Stops taking calls; waits (bounded) for those in flight. Idempotent. */
  async stop(graceMs = 3000): Promise<void> {
    this.#stopped = true;
    const end = Date.now() + graceMs;
    while (this.#inFlight > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  }

  #unavailable(method?: string): PluginUnavailableError {
    return new PluginUnavailableError(
      this.plugin,
      this.state,
      this.#stopped ? "the host stopped it" : "the host's NATS connection is down (reconnecting)",
      { method },
    );
  }
}
