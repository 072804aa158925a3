import type { PluginState } from "./plugin_supervisor.ts";
import type { StreamCallOptions } from "./plugin_streams.ts";

/** What an instance answers to `$/health`, checked and normalised by the caller. */
export type HealthAnswer = unknown;

/** The options of one {@linkcode PluginEndpoint.call}. */
export interface EndpointCallOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs: number;
  /** The plugins whose calls led to this one, ending with this plugin (internal). */
  readonly chain?: readonly string[];
}

/**
 * One instance of a plugin, as the call pipeline, the health checks and the host see it: the
 * seam between "where a plugin runs" and "how calls reach it". A local process under a
 * {@linkcode PluginSupervisor} implements it today; a remote instance (another machine) or any
 * later kind plugs in by implementing it, without touching the pipeline or the reload logic.
 *
 * Cancel is the call's `signal`: aborting it (or the call's timeout) makes the endpoint tell
 * the instance (`$/cancel` for a local process) and reject the call.
 */
export interface PluginEndpoint {
  /** Its lifecycle state; only `ready` serves calls. */
  readonly state: PluginState;
  /**
   * Which incarnation serves now (a local process's pid); it changes when the instance is
   * restarted, so health kept for the old one can be dropped. `undefined` while none runs.
   */
  readonly incarnation: number | undefined;
  /** How many times it was restarted after a crash. */
  readonly restarts: number;
  /**
   * Resolves when it is `ready` (waiting through a restart); rejects with
   * `PluginUnavailableError` when it is stopped or failed, or with `signal`'s reason.
   */
  whenReady(signal?: AbortSignal): Promise<unknown>;
  /**
   * Sends one call to the incarnation serving now, and never waits for another: when none is
   * `ready` it rejects with `PluginUnavailableError` at once (the pipeline may send the call
   * elsewhere, as it was not sent). Rejects with `PluginTimeoutError` after `timeoutMs`.
   */
  call(
    method: string,
    params: unknown,
    options: EndpointCallOptions,
  ): Promise<unknown>;
  /**
   * Streams one call on the incarnation serving now, as `call` sends one: chunks go to
   * `options.sink`, the promise resolves with the final result when the stream ends. Optional:
   * an endpoint without it cannot stream (`STREAM_NOT_SUPPORTED`).
   */
  stream?(method: string, params: unknown, options: StreamCallOptions): Promise<unknown>;
  /** Sends a notification to the incarnation serving now; dropped when none is `ready`. */
  notify(method: string, params?: unknown): void;
  /** Asks the serving incarnation for its health (`$/health`); rejects when it cannot answer. */
  health(timeoutMs: number): Promise<HealthAnswer>;
  /** Replaces a serving incarnation that is not well (within its restart budget). */
  recycle(reason: string): Promise<void>;
  /** Stops it for good, draining calls in flight; idempotent. */
  stop(): Promise<void>;
}
