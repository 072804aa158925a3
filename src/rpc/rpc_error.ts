import { PlugsconcError } from "../errors/mod.ts";

/**
 * The stable codes of {@linkcode RpcError}.
 *
 * Framing: `RPC_LINE_TOO_LONG`, `RPC_INVALID_UTF8`, `RPC_TRUNCATED`, `RPC_BAD_FRAME` (a
 * length-prefixed frame with a malformed header or no newline after its payload).
 * Envelope: `RPC_INVALID_JSON`, `RPC_INVALID_MESSAGE`, `RPC_UNKNOWN_ID`, `RPC_DUPLICATE_ID`.
 * Outcome of a request: `RPC_TIMEOUT`, `RPC_CANCELLED`, `RPC_CLOSED`, `RPC_REMOTE`.
 * Output: `RPC_WRITE_BACKLOG` (the other side stopped reading; the write queue's bound was hit).
 */
export type RpcErrorCode =
  | "RPC_LINE_TOO_LONG"
  | "RPC_INVALID_UTF8"
  | "RPC_INVALID_JSON"
  | "RPC_INVALID_MESSAGE"
  | "RPC_UNKNOWN_ID"
  | "RPC_DUPLICATE_ID"
  | "RPC_TRUNCATED"
  | "RPC_BAD_FRAME"
  | "RPC_TIMEOUT"
  | "RPC_CANCELLED"
  | "RPC_CLOSED"
  | "RPC_REMOTE"
  | "RPC_WRITE_BACKLOG";

/**
 * The numeric error codes JSON-RPC 2.0 reserves, plus `REQUEST_CANCELLED` (LSP's `-32800`).
 *
 * @example
 * ```ts
 * peer.handle("sum", (params) => {
 *   if (!Array.isArray(params)) {
 *     throw Object.assign(new Error("params must be an array"), {
 *       code: JsonRpcErrorCode.INVALID_PARAMS,
 *     });
 *   }
 *   return params.reduce((a, b) => a + b, 0);
 * });
 * ```
 */
export const JsonRpcErrorCode: {
  readonly PARSE_ERROR: -32700;
  readonly INVALID_REQUEST: -32600;
  readonly METHOD_NOT_FOUND: -32601;
  readonly INVALID_PARAMS: -32602;
  readonly INTERNAL_ERROR: -32603;
  readonly REQUEST_CANCELLED: -32800;
} = Object.freeze({
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  REQUEST_CANCELLED: -32800,
});

/**
 * An error of the RPC layer: framing, envelope, or the fate of a request.
 *
 * `details` carries what is known of the place: `line` (1-based line number of the stream),
 * `id`, `method`, `maxLineBytes`, ...
 *
 * @example
 * ```ts
 * try {
 *   await peer.request("slow", {}, { timeoutMs: 1000 });
 * } catch (e) {
 *   if (e instanceof RpcError && e.code === "RPC_TIMEOUT") retryLater();
 * }
 * ```
 */
export class RpcError extends PlugsconcError {
  /** The stable code, narrowed to the RPC codes. */
  declare readonly code: RpcErrorCode;

  /**
   * Creates an RPC error.
   *
   * @param code one of {@linkcode RpcErrorCode}
   * @param message what failed, where, and what to do
   * @param options `cause` and `details`
   */
  constructor(
    code: RpcErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
  }
}

/**
 * The other side answered a request with a JSON-RPC error object (code `RPC_REMOTE`).
 *
 * `rpcCode`, `remoteMessage` and `data` are the fields of that error object; `message` adds
 * the method. Throwing one from a handler passes its `rpcCode` and `data` on unchanged.
 */
export class RpcRemoteError extends RpcError {
  /** The JSON-RPC `error.code` (an integer, e.g. `-32601`). */
  readonly rpcCode: number;
  /** The JSON-RPC `error.message`, as the remote sent it. */
  readonly remoteMessage: string;
  /** The JSON-RPC `error.data`, or `undefined` when absent. */
  readonly data: unknown;

  /**
   * Wraps a JSON-RPC error object received from the other side.
   *
   * @param rpcCode JSON-RPC `error.code`
   * @param remoteMessage JSON-RPC `error.message`
   * @param options `method` (the request that failed, if known), `data`, `id`, `cause`
   */
  constructor(
    rpcCode: number,
    remoteMessage: string,
    options: { method?: string; id?: unknown; data?: unknown; cause?: unknown } = {},
  ) {
    const where = options.method === undefined
      ? "the remote peer reported an error"
      : `request "${options.method}" failed on the remote peer`;
    super("RPC_REMOTE", `${where}: ${remoteMessage} (JSON-RPC code ${rpcCode})`, {
      cause: options.cause,
      details: {
        rpcCode,
        ...(options.method === undefined ? {} : { method: options.method }),
        ...(options.id === undefined ? {} : { id: options.id }),
      },
    });
    this.rpcCode = rpcCode;
    this.remoteMessage = remoteMessage;
    this.data = options.data;
  }
}
