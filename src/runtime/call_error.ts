import { RpcError, RpcRemoteError } from "../rpc/mod.ts";
import {
  PluginCallCancelledError,
  PluginCallError,
  PluginCrashedError,
  PluginError,
  PluginNotFoundError,
  PluginProtocolError,
  PluginTimeoutError,
  PluginUnavailableError,
} from "./plugin_errors.ts";
import { clip, QUOTE } from "./record_cap.ts";

/** What {@link callError} needs to know about the failed call. */
export interface CallErrorContext {
  readonly plugin: string;
  readonly method: string;
  /** The call's timeout, for `PluginTimeoutError`. */
  readonly timeoutMs: number | undefined;
  /** The methods the plugin announced, for `PluginNotFoundError`. */
  readonly methods: readonly string[];
  /**
   * Longest message of the plugin's own kept in a `PluginCallError`: its message ends up in
   * host records (the gateway's, retries'), so it is cut like one.
   */
  readonly maxMessage: number;
}

/**
 * Maps what a JSON-RPC request to a plugin rejected with to the plugin error callers get:
 * `PluginTimeoutError`, `PluginCallCancelledError`, `PluginCallError` (the handler threw),
 * `PluginNotFoundError` (no such method), `PluginCrashedError`, `PluginProtocolError` or
 * `PluginUnavailableError`. Anything else is returned as it is.
 */
export function callError(e: unknown, ctx: CallErrorContext): unknown {
  const { plugin: name, method } = ctx;
  if (e instanceof RpcRemoteError) {
    if (e.rpcCode === -32601) {
      const known = ctx.methods.length > 64
        ? [...ctx.methods.slice(0, 64), `… ${ctx.methods.length - 64} more`]
        : ctx.methods;
      return new PluginNotFoundError(name, method, known);
    }
    return new PluginCallError(name, method, {
      code: e.rpcCode,
      message: clip(e.remoteMessage, ctx.maxMessage),
      data: clipName(e.data),
    }, {
      cause: e,
    });
  }
  if (e instanceof RpcError) {
    if (e.code === "RPC_TIMEOUT") {
      return new PluginTimeoutError(name, method, ctx.timeoutMs ?? 0, { cause: e });
    }
    if (e.code === "RPC_CANCELLED") {
      return new PluginCallCancelledError(name, method, { cause: e });
    }
    if (e.code === "RPC_CLOSED") {
      const reason = e.cause;
      if (reason instanceof PluginCrashedError) {
        return new PluginCrashedError({
          plugin: name,
          method,
          exitCode: reason.exitCode,
          signal: reason.signal,
          stderr: reason.stderr,
        }, { cause: e });
      }
      if (reason instanceof PluginProtocolError) {
        return new PluginProtocolError(name, reason.reason, { method, cause: reason });
      }
      if (reason instanceof PluginError) return reason;
      return new PluginUnavailableError(name, "stopped", "its connection closed", {
        method,
        cause: e,
      });
    }
    if (e.code === "RPC_INVALID_MESSAGE") {
      return new PluginCallError(name, method, { code: -32602, message: e.message }, {
        cause: e,
      });
    }
  }
  return e;
}

/** The error data with its `name` (shown in the error's message) cut to a sane length. */
function clipName(data: unknown): unknown {
  const name = (data as { name?: unknown } | null | undefined)?.name;
  if (typeof name !== "string" || name.length <= QUOTE) return data;
  return { ...(data as Record<string, unknown>), name: clip(name, QUOTE) };
}
