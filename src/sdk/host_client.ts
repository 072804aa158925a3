import { PlugsconcError } from "../errors/mod.ts";
import { type JsonRpcPeer, type RpcId, RpcRemoteError } from "../rpc/mod.ts";

/** How a child ended, with its output (the host keeps at most 1 MiB of each stream). */
export interface ProcessResult {
  /** The host's id of the child (what `wait` and `kill` take). */
  readonly id: number;
  readonly pid: number;
  /** Exit code, `null` when a signal ended it. */
  readonly code: number | null;
  /** The signal that ended it, if one did. */
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Whether stdout was cut at the limit. */
  readonly stdout_truncated: boolean;
  /** Whether stderr was cut at the limit. */
  readonly stderr_truncated: boolean;
  readonly duration_ms: number;
}

/** A child of this plugin, as {@linkcode ProcessClient.list} shows it. */
export interface ChildInfo {
  /** The host's id of the child. */
  readonly id: number;
  readonly pid: number;
  readonly command: string;
  readonly args: readonly string[];
  readonly started_at: string;
  readonly running: boolean;
}

/** Signals a plugin may send to its children. */
export const CHILD_SIGNALS = [
  "SIGTERM",
  "SIGKILL",
  "SIGINT",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
] as const;

/** One of {@linkcode CHILD_SIGNALS}. */
export type ChildSignal = typeof CHILD_SIGNALS[number];

/**
 * The host's process service. A plugin has no `--allow-run`: the host runs a command for it
 * only when the manifest's `capabilities.process` grants that exact path and arguments (`*`
 * is one argument not starting with `-`, `+` or `@` and without `:`; `${DATA_DIR}/*` a path
 * inside the data folder). Children run in the plugin's data folder with only
 * `PATH`, `HOME` and the plugin's declared env, and are killed when the plugin stops.
 */
export interface ProcessClient {
  /**
   * Runs `command` to completion. Cancelling the handler's call (or `signal`) kills it; the
   * promise then rejects with the SDK's `RpcError` `RPC_CANCELLED`.
   *
   * @throws {HostServiceError} `PROCESS_NOT_ALLOWED`, `PROCESS_TIMEOUT`, `PROCESS_CANCELLED`,
   *   `PROCESS_SPAWN_FAILED`, `PROCESS_LIMIT`, `PROCESS_INVALID_PARAMS`
   */
  exec(
    command: string,
    args?: readonly string[],
    options?: { stdin?: string; timeoutMs?: number; signal?: AbortSignal },
  ): Promise<ProcessResult>;
  /**
   * Starts `command` in the background and returns the host's id for it;
   * {@linkcode ProcessClient.wait} collects it.
   */
  spawn(
    command: string,
    args?: readonly string[],
    options?: { stdin?: string },
  ): Promise<{ id: number; pid: number }>;
  /** Waits for a child started by `spawn` (by its id) and forgets it. */
  wait(id: number, options?: { signal?: AbortSignal }): Promise<ProcessResult>;
  /** This plugin's children not yet waited for. */
  list(): Promise<readonly ChildInfo[]>;
  /** Signals a child of this plugin, by id (needs `kill: [children]` in the manifest). */
  kill(id: number, signal?: ChildSignal): Promise<{ sent: boolean }>;
}

/**
 * Calls to other plugins (`host/plugins.call`), through the host. The host allows exactly the
 * methods the manifest lists under `capabilities.plugins: [{ name, methods }]` and runs each
 * call through the target's pipeline (rate limit, breaker, retries, bulkhead) with what is
 * left of this call's deadline; cancelling this call cancels it. A call that would lead back
 * to a plugin already in the chain (`a -> b -> a`) is refused.
 */
export interface PluginsClient {
  /**
   * Calls `method` of plugin `name` and resolves with its result.
   *
   * @example
   * ```ts
   * const sum = await ctx.host.plugins.call("calc", "add", { a: 1, b: 2 }) as number;
   * ```
   * @throws {HostServiceError} `PLUGIN_CALL_NOT_ALLOWED`, `PLUGIN_CALL_CYCLE`,
   *   `PLUGIN_CALL_DEPTH`, `PLUGIN_CALL_LIMIT`, `PLUGIN_NOT_FOUND`, the target's pipeline's
   *   codes (`PLUGIN_TIMEOUT`, `RATE_LIMITED`, `INVALID_PARAMS`, ...), or `PLUGIN_CALL_FAILED`
   *   when the target's handler threw (`details.rpcCode` and `details.data` are its error's)
   */
  call(
    name: string,
    method: string,
    params?: unknown,
    options?: { signal?: AbortSignal; timeoutMs?: number },
  ): Promise<unknown>;
}

/** Calls into services the host offers plugins (`host/<service>.<op>`). */
export interface HostClient {
  /** Sends a request to the host, e.g. `request("host/process.exec", {...})`. */
  request(
    method: string,
    params?: unknown,
    options?: { signal?: AbortSignal; timeoutMs?: number },
  ): Promise<unknown>;
  /** The process service (`host/process.*`). */
  readonly process: ProcessClient;
  /** Calls to other plugins (`host/plugins.call`). */
  readonly plugins: PluginsClient;
}

/**
 * The host refused a service request or could not carry it out. `code` is the host's stable
 * code (`PROCESS_NOT_ALLOWED`, ...), or `RPC_REMOTE` when the host sent none.
 *
 * @example
 * ```ts
 * try {
 *   await ctx.host.process.exec("/bin/sh", ["-c", "id"]);
 * } catch (e) {
 *   if (e instanceof HostServiceError && e.code === "PROCESS_NOT_ALLOWED") ctx.log.warn(e.message);
 * }
 * ```
 */
export class HostServiceError extends PlugsconcError {
  /**
   * @param code the host's code
   * @param message the host's message
   * @param options `cause` (the JSON-RPC error) and `details`
   */
  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
  }
}

function fromRemote(error: unknown): never {
  if (error instanceof RpcRemoteError) {
    const data = error.data as { code?: unknown; details?: unknown } | undefined;
    const code = typeof data?.code === "string" ? data.code : "RPC_REMOTE";
    const details = typeof data?.details === "object" && data.details !== null
      ? data.details as Record<string, unknown>
      : {};
    throw new HostServiceError(code, error.remoteMessage, { cause: error, details });
  }
  throw error;
}

/**
 * A {@linkcode HostClient} over `peer`; requests made without a signal of their own use
 * `signal` (the handler's), so that a cancelled call cancels what it asked of the host.
 * `call` is the id of the host's call the handler serves: calls to other plugins name it, so
 * the host gives them that call's deadline and chain.
 */
export function makeHostClient(peer: JsonRpcPeer, signal?: AbortSignal, call?: RpcId): HostClient {
  const request = (method: string, params?: unknown, opts?: { signal?: AbortSignal }) =>
    peer.request(method, params, { signal: opts?.signal ?? signal }).catch(fromRemote);
  return {
    request: (method, params, options) =>
      peer.request(method, params, { ...options, signal: options?.signal ?? signal })
        .catch(fromRemote),
    process: {
      exec: (command, args = [], o = {}) =>
        request("host/process.exec", {
          command,
          args,
          ...(o.stdin === undefined ? {} : { stdin: o.stdin }),
          ...(o.timeoutMs === undefined ? {} : { timeout_ms: o.timeoutMs }),
        }, o) as Promise<ProcessResult>,
      spawn: (command, args = [], o = {}) =>
        request("host/process.spawn", {
          command,
          args,
          ...(o.stdin === undefined ? {} : { stdin: o.stdin }),
        }) as Promise<{ id: number; pid: number }>,
      wait: (id, o) => request("host/process.wait", { id }, o) as Promise<ProcessResult>,
      list: async () =>
        ((await request("host/process.list", {})) as { children: ChildInfo[] }).children,
      kill: (id, sig = "SIGTERM") =>
        request("host/process.kill", { id, signal: sig }) as Promise<{ sent: boolean }>,
    },
    plugins: {
      call: (name, method, params, o = {}) =>
        peer.request("host/plugins.call", {
          ...(call === undefined ? {} : { request: call }),
          plugin: name,
          method,
          ...(params === undefined ? {} : { params }),
        }, {
          // The handler's call ends it even when it has a signal of its own.
          signal: o.signal === undefined || signal === undefined
            ? o.signal ?? signal
            : AbortSignal.any([o.signal, signal]),
          ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
        }).catch(fromRemote),
    },
  };
}
