/**
 * The wire protocol (DESIGN §5, README "Wire protocol"): JSON-RPC 2.0 over NDJSON lines or
 * length-prefixed `lp1` frames, the same on the host and the plugin side. The lowest layer of plugsconc: it knows bytes and messages, not plugins or
 * processes.
 *
 * - {@linkcode NdjsonDecoder} / {@linkcode encodeMessage}: framing with a line limit,
 *   UTF-8 checking and bounded memory.
 * - {@linkcode FrameDecoder} / {@linkcode encodeFrame}: length-prefixed frames (`lp1`),
 *   negotiated in `$/ready`, mixed with NDJSON lines; a frame over the limit is refused from
 *   its header, before any of it is held.
 * - {@linkcode JsonRpcPeer}: requests both ways, notifications, `$/cancel`, timeouts, and
 *   malformed input reported as {@linkcode RpcError}s instead of crashes.
 * - {@linkcode createMemoryPair}: two connected peers in memory, for tests.
 *
 * @example
 * ```ts
 * import { createMemoryPair } from "./mod.ts";
 *
 * await using pair = createMemoryPair({ b: { handlers: { echo: (params) => params } } });
 * console.log(await pair.a.request("echo", [1, 2], { timeoutMs: 1_000 })); // [1, 2]
 * ```
 *
 * @module
 */
export {
  type DecodeErrorCallback,
  DEFAULT_MAX_LINE_BYTES,
  encodeMessage,
  type LineCallback,
  NdjsonDecoder,
  type NdjsonDecoderOptions,
} from "./ndjson_decoder.ts";
export { encodeFrame, FrameDecoder, FRAMING_LP1 } from "./frame_decoder.ts";
export {
  DEFAULT_MAX_QUEUED_WRITE_BYTES,
  JsonRpcPeer,
  type JsonRpcPeerOptions,
  type RequestOptions,
  type SendFn,
} from "./peer.ts";
export type { RpcHandler, RpcHandlerContext, RpcId } from "./rpc_handler.ts";
export {
  createMemoryPair,
  type MemoryPair,
  type MemoryPairOptions,
  type MemoryPeerOptions,
} from "./memory_transport.ts";
export { JsonRpcErrorCode, RpcError, type RpcErrorCode, RpcRemoteError } from "./rpc_error.ts";
