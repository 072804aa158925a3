import {
  type EndpointCallOptions,
  type PluginEndpoint,
  type PluginState,
  type StreamCallOptions,
  streamNotSupported,
} from "../runtime/mod.ts";
import type { RemoteEndpoint } from "./remote_endpoint.ts";
import type { RemoteWorkerInfo } from "./remote_link.ts";

/**
 * A local instance with remote overflow (`placement: overflow`): calls go to the local process
 * until it has `overflowAfter` of them in flight; beyond that, or while it is not running
 * (crashed, restarting), they go to the plugin's NATS workers. Health, incarnation and restarts
 * are the local process's, so the plugin's health reads as a local one's.
 */
export class OverflowEndpoint implements PluginEndpoint {
  readonly #local: PluginEndpoint;
  readonly #remote: RemoteEndpoint;
  readonly #after: number;
  #localInFlight = 0;
  #overflowed = 0;

  /**
   * @param local the supervisor of the local process
   * @param remote the plugin's NATS workers
   * @param overflowAfter calls in flight locally before the next one goes remote
   */
  constructor(local: PluginEndpoint, remote: RemoteEndpoint, overflowAfter: number) {
    if (!Number.isInteger(overflowAfter) || overflowAfter < 1) {
      throw new RangeError(`overflowAfter must be a whole number >= 1, got ${overflowAfter}`);
    }
    this.#local = local;
    this.#remote = remote;
    this.#after = overflowAfter;
  }

  /** The overflow's workers, as discovery last reported them. */
  get overflow(): { readonly workers: readonly RemoteWorkerInfo[]; readonly calls: number } {
    return { workers: this.#remote.workers, calls: this.#overflowed };
  }

  /** The local process's state, or `ready` while it is down and the NATS link is up. */
  get state(): PluginState {
    const s = this.#local.state;
    if (s === "ready" || s === "stopped" || s === "draining") return s;
    return this.#remote.state === "ready" ? "ready" : s;
  }

  get incarnation(): number | undefined {
    return this.#local.incarnation;
  }

  get restarts(): number {
    return this.#local.restarts;
  }

  whenReady(signal?: AbortSignal): Promise<unknown> {
    return this.state === "ready" ? Promise.resolve() : this.#local.whenReady(signal);
  }

  async call(
    method: string,
    params: unknown,
    options: EndpointCallOptions,
  ): Promise<unknown> {
    const local = this.#local.state === "ready" && this.#localInFlight < this.#after;
    if (!local && this.#remote.state === "ready") {
      this.#overflowed++;
      return await this.#remote.call(method, params, options);
    }
    this.#localInFlight++;
    try {
      return await this.#local.call(method, params, options);
    } finally {
      this.#localInFlight--;
    }
  }

  /** Streams go to the local process: NATS workers do not stream. */
  stream(method: string, params: unknown, options: StreamCallOptions): Promise<unknown> {
    return this.#local.stream?.(method, params, options) ??
      Promise.reject(streamNotSupported(this.#remote.plugin, method, "where it runs"));
  }

  notify(method: string, params?: unknown): void {
    this.#local.notify(method, params);
  }

  health(timeoutMs: number): Promise<unknown> {
    void this.#remote.discover(Math.min(timeoutMs, 1000)).catch(() => {});
    return this.#local.state === "ready"
      ? this.#local.health(timeoutMs)
      : this.#remote.health(timeoutMs);
  }

  recycle(reason: string): Promise<void> {
    return this.#local.recycle(reason);
  }

  /** Stops the overflow; the local supervisor is stopped by the host with the others. */
  async stop(): Promise<void> {
    await this.#remote.stop();
  }
}
