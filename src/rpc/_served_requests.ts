import { PlugsconcError } from "../errors/mod.ts";
import { clipText, messageOf, quoteId } from "./_error_text.ts";
import { isPromiseLike } from "./_is_promise_like.ts";
import { isBacklog, writeFailedError } from "./_peer_errors.ts";
import type { WriteQueue } from "./_write_queue.ts";
import { JsonRpcErrorCode, RpcError, RpcRemoteError } from "./rpc_error.ts";
import type { RpcHandler, RpcHandlerContext, RpcId } from "./rpc_handler.ts";

/** An incoming request being served; creates its AbortController only if the handler asks. */
class HandlerContext implements RpcHandlerContext {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;

  constructor(readonly id: RpcId, readonly method: string) {}

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

/**
 * The other side's requests: the handlers that serve them, the requests being served (by
 * id, to cancel them), and the answers, results and errors alike, written in order.
 */
export class ServedRequests {
  readonly #writer: WriteQueue;
  readonly #report: (error: RpcError) => void;
  readonly #encode: (message: unknown) => Uint8Array;
  readonly #handlers = new Map<string, RpcHandler>();
  readonly #inFlight = new Map<RpcId, HandlerContext>();
  #closed = false;

  /**
   * @param writer where answers go
   * @param report receives duplicate request ids and failed writes of answers
   * @param encode the peer's current encoding (NDJSON line or frame)
   */
  constructor(
    writer: WriteQueue,
    report: (error: RpcError) => void,
    encode: (message: unknown) => Uint8Array,
  ) {
    this.#writer = writer;
    this.#report = report;
    this.#encode = encode;
  }

  /** Requests whose handler has not finished yet. */
  get size(): number {
    return this.#inFlight.size;
  }

  /** Serves `method` with `handler` from now on (arguments already checked). */
  register(method: string, handler: RpcHandler): void {
    this.#handlers.set(method, handler);
  }

  /** Runs the handler of a well-formed request; it runs synchronously up to its first `await`. */
  serve(id: RpcId, method: string, params: unknown): void {
    if (this.#inFlight.has(id)) {
      this.#report(
        new RpcError(
          "RPC_DUPLICATE_ID",
          `received request "${clipText(method)}" with id ${
            quoteId(id)
          } while a request with that id is still being served; it was ignored. ` +
            `The caller must use a fresh id per request.`,
          { details: { id, method: clipText(method) } },
        ),
      );
      return;
    }
    const handler = this.#handlers.get(method);
    if (handler === undefined) {
      this.respondError(
        id,
        JsonRpcErrorCode.METHOD_NOT_FOUND,
        `Method not found: "${clipText(method)}"`,
      );
      return;
    }
    const ctx = new HandlerContext(id, method);
    this.#inFlight.set(id, ctx);
    let value: unknown;
    try {
      value = handler(params, ctx);
    } catch (error) {
      this.#finishError(ctx, error);
      return;
    }
    if (isPromiseLike(value)) {
      void this.#settleHandler(ctx, value);
      return;
    }
    this.#finishOk(ctx, value);
  }

  /** Aborts the handler serving `id` (`$/cancel`); an unknown id is normal, it may be done. */
  cancel(id: RpcId): void {
    const ctx = this.#inFlight.get(id);
    if (ctx !== undefined) {
      ctx.abort(
        new RpcError(
          "RPC_CANCELLED",
          `request "${ctx.method}" (id ${id}) was cancelled by the caller`,
          { details: { id, method: ctx.method } },
        ),
      );
    }
  }

  /** Aborts every running handler with `RPC_CLOSED` (cause: `reason`); nothing more is sent. */
  close(reason: unknown): void {
    this.#closed = true;
    const running = [...this.#inFlight.values()];
    this.#inFlight.clear();
    for (const ctx of running) {
      ctx.abort(
        new RpcError(
          "RPC_CLOSED",
          `the connection closed while request "${ctx.method}" (id ${ctx.id}) was being served`,
          { cause: reason, details: { id: ctx.id, method: ctx.method } },
        ),
      );
    }
  }

  /** Answers `id` (`null`: a message that had none usable) with a JSON-RPC error. */
  respondError(id: RpcId | null, code: number, message: string, data?: unknown): void {
    if (this.#closed) return;
    const error = data === undefined ? { code, message } : { code, message, data };
    let bytes: Uint8Array;
    try {
      bytes = this.#encode({ jsonrpc: "2.0", id, error });
    } catch {
      // `data` was not serialisable; the code and message still are.
      bytes = this.#encode({ jsonrpc: "2.0", id, error: { code, message } });
    }
    this.#writeResponse(bytes);
  }

  async #settleHandler(ctx: HandlerContext, value: PromiseLike<unknown>): Promise<void> {
    let result: unknown;
    try {
      result = await value;
    } catch (error) {
      this.#finishError(ctx, error);
      return;
    }
    this.#finishOk(ctx, result);
  }

  /** Forgets a finished handler; false when the connection closed meanwhile. */
  #release(ctx: HandlerContext): boolean {
    if (this.#inFlight.get(ctx.id) !== ctx) return false;
    this.#inFlight.delete(ctx.id);
    return !this.#closed;
  }

  #finishOk(ctx: HandlerContext, result: unknown): void {
    if (!this.#release(ctx)) return;
    let bytes: Uint8Array;
    try {
      bytes = this.#encode({ jsonrpc: "2.0", id: ctx.id, result: result ?? null });
    } catch (cause) {
      this.respondError(
        ctx.id,
        JsonRpcErrorCode.INTERNAL_ERROR,
        `the result of "${ctx.method}" is not JSON-serialisable: ${messageOf(cause)}`,
      );
      return;
    }
    this.#writeResponse(bytes);
  }

  #finishError(ctx: HandlerContext, error: unknown): void {
    if (!this.#release(ctx)) return;
    const e = error as { rpcCode?: unknown; code?: unknown; data?: unknown } | null | undefined;
    let code: number = JsonRpcErrorCode.INTERNAL_ERROR;
    if (Number.isSafeInteger(e?.rpcCode)) code = e!.rpcCode as number;
    else if (Number.isSafeInteger(e?.code)) code = e!.code as number;
    let data = e !== null && typeof e === "object" && "data" in e ? e.data : undefined;
    if (
      data === undefined && error instanceof PlugsconcError && !(error instanceof RpcRemoteError)
    ) {
      data = { code: error.code, details: error.details };
    }
    this.respondError(ctx.id, code, messageOf(error), data);
  }

  #writeResponse(bytes: Uint8Array): void {
    const written = this.#writer.write(bytes);
    if (written !== undefined) written.then(undefined, this.#responseWriteFailed);
  }

  readonly #responseWriteFailed = (cause: unknown): void => {
    // A full write queue is reported once, by the peer, not once per dropped answer.
    if (isBacklog(cause)) return;
    this.#report(writeFailedError("a response", cause));
  };
}
