import type { RpcId } from "./rpc_handler.ts";

/** Whether a parsed `id` field is one JSON-RPC allows: a string or a finite number. */
export function isId(value: unknown): value is RpcId {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}
