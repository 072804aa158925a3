import { messageOf } from "./_error_text.ts";
import { RpcError } from "./rpc_error.ts";

/**
 * The rejection of a request whose signal aborted: `RPC_TIMEOUT` when the reason is a
 * `TimeoutError` (as from `AbortSignal.timeout`), else `RPC_CANCELLED`. `id` is `undefined`
 * when the signal was aborted before the request got one.
 */
export function abortError(method: string, id: number | undefined, reason: unknown): RpcError {
  const where = id === undefined ? `request "${method}"` : `request "${method}" (id ${id})`;
  const details = id === undefined ? { method } : { id, method };
  if (reason instanceof DOMException && reason.name === "TimeoutError") {
    return new RpcError("RPC_TIMEOUT", `${where} timed out: ${reason.message}`, {
      cause: reason,
      details,
    });
  }
  return new RpcError("RPC_CANCELLED", `${where} was cancelled: ${messageOf(reason)}`, {
    cause: reason,
    details,
  });
}

/** The protocol error of a notification or response whose write failed (`what` names it). */
export function writeFailedError(what: string, cause: unknown): RpcError {
  return new RpcError(
    "RPC_CLOSED",
    `could not send ${what}: the write failed (${messageOf(cause)})`,
    { cause },
  );
}

/** Whether `error` is the `RPC_WRITE_BACKLOG` of a failed write queue (reported once, apart). */
export function isBacklog(error: unknown): boolean {
  return error instanceof RpcError && error.code === "RPC_WRITE_BACKLOG";
}
