/** A JSON-RPC request id: ours are integers, the other side may also use strings. */
export type RpcId = number | string;

/** What a request handler learns besides the params. */
export interface RpcHandlerContext {
  /**
   * Aborted when the caller sends `$/cancel` for this request (reason: `RPC_CANCELLED`) or
   * the connection closes (reason: `RPC_CLOSED`).
   */
  readonly signal: AbortSignal;
  /** The request id, as the caller sent it. */
  readonly id: RpcId;
  /** The method name. */
  readonly method: string;
}

/**
 * Serves one method. The return value (or the resolved value of a returned promise) is the
 * JSON-RPC `result`; `undefined` is sent as `null`.
 *
 * A thrown error becomes the JSON-RPC error object: `code` is the error's `rpcCode` or
 * numeric `code` if it is an integer, else `-32603`; `message` is its message; `data` is its
 * `data` field, or `{ code, details }` for a `PlugsconcError`.
 *
 * @example
 * ```ts
 * const sum: RpcHandler = (params) => (params as number[]).reduce((a, b) => a + b, 0);
 * ```
 */
export type RpcHandler = (params: unknown, ctx: RpcHandlerContext) => unknown;
