/**
 * The NATS side of a remote call: subjects, headers and the JSON bodies of requests and
 * replies. Both the host ({@linkcode RemoteEndpoint}) and the worker ({@linkcode RemoteWorker})
 * use only what is here, so the two cannot drift apart.
 *
 * @module
 */
import {
  PluginCallCancelledError,
  PluginCallError,
  PluginCrashedError,
  PluginError,
  PluginNotFoundError,
  PluginTimeoutError,
  PluginUnavailableError,
} from "../runtime/mod.ts";
import { RpcRemoteError } from "../rpc/mod.ts";

/** Subject of one method: `plugsconc.call.<plugin>.<method>`. */
export function callSubject(plugin: string, method: string): string {
  return `plugsconc.call.${plugin}.${method}`;
}

/** Where a host asks every worker of a plugin to cancel a call by its id (no queue group). */
export function cancelSubject(plugin: string): string {
  return `plugsconc.cancel.${plugin}`;
}

/** A worker's own liveness subject: no responders on it means the worker is gone. */
export function pingSubject(worker: string): string {
  return `plugsconc.worker.${worker}.ping`;
}

/** The queue group of a plugin: workers of one plugin share its calls. */
export function queueGroup(plugin: string): string {
  return `plugsconc-${plugin}`;
}

/** The NATS service name of a plugin (`$SRV.INFO.<name>`). */
export function serviceName(plugin: string): string {
  return `plugsconc-${plugin}`;
}

/** Method names that can be one subject token (and a NATS service endpoint name). */
export const METHOD_TOKEN = /^[A-Za-z0-9_-]+$/;

/** Header names. */
export const H = {
  /** The call's id (unique per attempt); the cancel subject names calls by it. */
  callId: "Plugsconc-Call-Id",
  /** Time left for the call, in ms (relative: the two machines' clocks may differ). */
  timeoutMs: "Plugsconc-Timeout-Ms",
  /** `accepted` (the worker took it) or `result`. */
  kind: "Plugsconc-Kind",
  /** The worker's id. */
  worker: "Plugsconc-Worker",
  /** The subject the worker was called on: the host refuses a reply naming another. */
  subject: "Plugsconc-Subject",
  /**
   * The chain of plugin calls that led to this call (`a,b`, ending with the called plugin), so
   * that the worker's plugins refuse a cycle back to a plugin on the host as the host would.
   */
  chain: "Plugsconc-Chain",
} as const;

/** A reply's body: the result, or the error the worker's pipeline raised. */
export type ReplyBody =
  | { readonly result: unknown }
  | { readonly error: WireError };

/** An error as it crosses the wire. */
export interface WireError {
  readonly code: string;
  readonly message: string;
  /** JSON-RPC code and data of the plugin's own error (`PLUGIN_CALL_FAILED`). */
  readonly remoteCode?: number;
  readonly remoteMessage?: string;
  readonly data?: unknown;
  readonly known?: readonly string[];
  readonly exitCode?: number | null;
  readonly signal?: string | null;
  readonly stderr?: readonly string[];
}

/** What a worker sends for an error of its own call. */
export function encodeError(e: unknown): WireError {
  if (e instanceof PluginCallError) {
    const cause = e.cause instanceof RpcRemoteError ? e.cause.remoteMessage : undefined;
    return {
      code: e.code,
      message: e.message,
      remoteCode: e.remoteCode,
      remoteMessage: cause ?? e.message,
      data: e.data,
    };
  }
  if (e instanceof PluginCrashedError) {
    return {
      code: e.code,
      message: e.message,
      exitCode: e.exitCode,
      signal: e.signal,
      stderr: e.stderr.slice(-5),
    };
  }
  if (e instanceof PluginNotFoundError) {
    const known = e.details.known;
    return { code: e.code, message: e.message, known: Array.isArray(known) ? known : [] };
  }
  if (e instanceof PluginError) return { code: e.code, message: e.message };
  return { code: "INTERNAL", message: e instanceof Error ? e.message : String(e) };
}

/**
 * The host-side error of a worker's error answer: the same classes as a local call (so
 * retry and breaker decide alike), with the worker named where the class has room for it.
 */
export function decodeError(
  w: WireError,
  ctx: { plugin: string; method: string; timeoutMs: number; worker: string },
): PluginError {
  const { plugin, method } = ctx;
  switch (w.code) {
    case "PLUGIN_CALL_FAILED":
      return new PluginCallError(plugin, method, {
        code: typeof w.remoteCode === "number" ? w.remoteCode : -32000,
        message: String(w.remoteMessage ?? w.message),
        data: w.data,
      });
    case "PLUGIN_TIMEOUT":
      return new PluginTimeoutError(plugin, method, ctx.timeoutMs);
    case "PLUGIN_CALL_CANCELLED":
      return new PluginCallCancelledError(plugin, method);
    case "METHOD_NOT_FOUND":
      return new PluginNotFoundError(plugin, method, (w.known ?? []).map(String));
    case "PLUGIN_CRASHED":
      return new PluginCrashedError({
        plugin,
        method,
        exitCode: w.exitCode ?? null,
        signal: w.signal ?? null,
        stderr: (w.stderr ?? []).map(String),
        reason: `on worker ${ctx.worker}`,
      });
    default:
      return new PluginUnavailableError(
        plugin,
        "unavailable",
        `worker ${ctx.worker} answered ${w.code}: ${w.message}`,
        { method },
      );
  }
}
