import { PlugsconcError } from "../errors/mod.ts";
import { encodeMessage, NdjsonDecoder } from "./ndjson_decoder.ts";
import { JsonRpcErrorCode, RpcError, RpcRemoteError } from "./rpc_error.ts";

/** Writes one encoded message; a returned promise delays the next write until it settles. */
export type SendFn = (bytes: Uint8Array) => void | Promise<void>;

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
 * `data` field, or `{ code, details }` for a {@linkcode PlugsconcError}.
 */
export type RpcHandler = (params: unknown, ctx: RpcHandlerContext) => unknown;

/** Options of {@linkcode JsonRpcPeer.request}. */
export interface RequestOptions {
  /**
   * Aborting it sends `$/cancel` to the other side and rejects with `RPC_CANCELLED`
   * (`RPC_TIMEOUT` when the reason is a `TimeoutError`, as from `AbortSignal.timeout`).
   */
  readonly signal?: AbortSignal;
  /**
   * Milliseconds to wait for the response before sending `$/cancel` and rejecting with
   * `RPC_TIMEOUT`.
   * @default {no timeout}
   */
  readonly timeoutMs?: number;
  /** Called with the request's id as soon as it has one (to match notifications to it). */
  readonly onId?: (id: number) => void;
}

/** Options of {@linkcode JsonRpcPeer}. */
export interface JsonRpcPeerOptions {
  /** Writes one encoded message (a complete line) to the other side. */
  readonly send: SendFn;
  /**
   * The longest accepted incoming line in bytes.
   * @default {16 MiB}
   */
  readonly maxLineBytes?: number;
  /**
   * Receives malformed input (framing, JSON, envelope, unknown or duplicate ids), error
   * responses that name no request, failed writes, and exceptions of `onNotification`.
   * The peer keeps working after each one. Exceptions thrown here are ignored.
   * @default {errors are dropped}
   */
  readonly onProtocolError?: (error: RpcError) => void;
  /**
   * Receives incoming notifications except `$/cancel`, which the peer handles itself.
   * @default {notifications are dropped}
   */
  readonly onNotification?: (method: string, params: unknown) => void | Promise<void>;
  /** Handlers to register, as if passed to {@linkcode JsonRpcPeer.handle}. */
  readonly handlers?: Readonly<Record<string, RpcHandler>>;
}

const CANCEL_METHOD = "$/cancel";
/** Late responses of cancelled requests are expected; remember this many cancelled ids. */
const ABANDONED_LIMIT = 1024;
const QUEUE_COMPACT_AT = 1024;

/** A request of ours waiting for its response. Doubles as the abort listener of its signal. */
class PendingRequest {
  /** `performance.now()` by which it must be answered; `Infinity` without a timeout. */
  deadline = Infinity;
  signal: AbortSignal | undefined = undefined;

  constructor(
    readonly id: number,
    readonly method: string,
    readonly timeoutMs: number | undefined,
    readonly resolve: (value: unknown) => void,
    readonly reject: (reason: unknown) => void,
    readonly onAbort: (entry: PendingRequest) => void,
  ) {}

  handleEvent(): void {
    this.onAbort(this);
  }
}

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

interface QueuedWrite {
  readonly bytes: Uint8Array;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/**
 * One end of a JSON-RPC 2.0 connection over NDJSON framing (DESIGN §5), the same on the
 * host and the plugin side. It knows nothing of processes: bytes go out through `send`,
 * and come in through {@linkcode JsonRpcPeer.receive}; call {@linkcode JsonRpcPeer.close}
 * at end of input.
 *
 * Malformed input never throws out of `receive()`: it is reported to `onProtocolError` and,
 * where JSON-RPC asks for it, answered with an error response (`-32700`, `-32600`).
 * Writes keep their order even when `send` is asynchronous.
 *
 * @example
 * ```ts
 * const peer = new JsonRpcPeer({
 *   send: (bytes) => writer.write(bytes),
 *   onProtocolError: (err) => log.warn(err.message),
 *   handlers: { echo: (params) => params },
 * });
 * (async () => {
 *   for await (const chunk of stdout) peer.receive(chunk);
 *   peer.close(new Error("plugin exited"));
 * })();
 * const sum = await peer.request("sum", [1, 2], { timeoutMs: 5_000 });
 * ```
 */
export class JsonRpcPeer implements AsyncDisposable {
  readonly #send: SendFn;
  readonly #decoder: NdjsonDecoder;
  readonly #onProtocolError: ((error: RpcError) => void) | undefined;
  readonly #onNotification: JsonRpcPeerOptions["onNotification"];
  readonly #handlers = new Map<string, RpcHandler>();
  readonly #pending = new Map<number, PendingRequest>();
  #sweepTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepAt = Infinity;
  /** Pending requests with a deadline; at 0 the sweep timer is cleared (nothing keeps it). */
  #timed = 0;
  readonly #inFlight = new Map<RpcId, HandlerContext>();
  readonly #abandoned = new Set<number>();
  #nextId = 1;
  #closed = false;
  #protocolErrors = 0;

  #writing = false;
  #queue: (QueuedWrite | undefined)[] = [];
  #queueHead = 0;

  /**
   * Creates a peer; it sends nothing until asked to.
   *
   * @param options `send` is required; see {@linkcode JsonRpcPeerOptions}
   */
  constructor(options: JsonRpcPeerOptions) {
    if (typeof options.send !== "function") {
      throw new TypeError(`JsonRpcPeer needs a send function, got ${typeof options.send}`);
    }
    this.#send = options.send;
    this.#decoder = new NdjsonDecoder({ maxLineBytes: options.maxLineBytes });
    this.#onProtocolError = options.onProtocolError;
    this.#onNotification = options.onNotification;
    for (const [method, handler] of Object.entries(options.handlers ?? {})) {
      this.handle(method, handler);
    }
  }

  /** Requests of ours still waiting for a response. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Incoming requests whose handler has not finished yet. */
  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  /** Messages waiting for an earlier asynchronous `send` to settle. */
  get queuedWriteCount(): number {
    return this.#queue.length - this.#queueHead;
  }

  /** How many protocol errors were reported so far. */
  get protocolErrorCount(): number {
    return this.#protocolErrors;
  }

  /** Whether {@linkcode JsonRpcPeer.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Serves `method` with `handler`, replacing an earlier handler of that method.
   *
   * @example
   * ```ts
   * peer.handle("sleep", async (params, { signal }) => {
   *   await delay(Number(params), { signal });
   *   return "done";
   * });
   * ```
   */
  handle(method: string, handler: RpcHandler): void {
    if (typeof method !== "string" || method === "") {
      throw new TypeError(`method must be a non-empty string, got ${JSON.stringify(method)}`);
    }
    if (method === CANCEL_METHOD) {
      throw new RangeError(`"${CANCEL_METHOD}" is handled by the peer itself`);
    }
    if (typeof handler !== "function") {
      throw new TypeError(`the handler of "${method}" must be a function, got ${typeof handler}`);
    }
    this.#handlers.set(method, handler);
  }

  /**
   * Sends a request and resolves with the `result` of its response.
   *
   * Rejects with an {@linkcode RpcRemoteError} when the other side answers with an error,
   * and with an {@linkcode RpcError} coded `RPC_CANCELLED`, `RPC_TIMEOUT` (both after sending
   * `$/cancel`), `RPC_CLOSED` (connection closed or write failed) or `RPC_INVALID_MESSAGE`
   * (params not serialisable, or a malformed response).
   *
   * @param method the method name
   * @param params an object or array, or `undefined` to omit
   * @param options `signal` and `timeoutMs`
   */
  request(method: string, params?: unknown, options: RequestOptions = {}): Promise<unknown> {
    const { signal, timeoutMs } = options;
    if (timeoutMs !== undefined && !(timeoutMs > 0 && timeoutMs <= 2_147_483_647)) {
      return Promise.reject(
        new RangeError(`timeoutMs must be between 1 and 2147483647, got ${timeoutMs}`),
      );
    }
    if (this.#closed) {
      return Promise.reject(
        new RpcError("RPC_CLOSED", `cannot send request "${method}": the connection is closed`, {
          details: { method },
        }),
      );
    }
    if (signal?.aborted) return Promise.reject(abortError(method, undefined, signal.reason));
    const id = this.#nextId++;
    options.onId?.(id);
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage({ jsonrpc: "2.0", id, method, params });
    } catch (cause) {
      return Promise.reject(
        new RpcError(
          "RPC_INVALID_MESSAGE",
          `cannot send request "${method}": its params are not JSON-serialisable (${
            messageOf(cause)
          })`,
          { cause, details: { id, method } },
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    const entry = new PendingRequest(id, method, timeoutMs, resolve, reject, this.#onAbort);
    this.#pending.set(id, entry);
    if (timeoutMs !== undefined) {
      entry.deadline = performance.now() + timeoutMs;
      this.#timed++;
      // One timer for all requests, armed for the earliest deadline: a timer per request
      // costs more than the rest of a request at 50,000 calls/s.
      if (this.#sweepTimer === undefined || entry.deadline < this.#sweepAt) {
        this.#arm(entry.deadline);
      }
    }
    if (signal !== undefined) {
      entry.signal = signal;
      signal.addEventListener("abort", entry, { once: true });
    }
    const written = this.#write(bytes);
    if (written !== undefined) {
      written.then(undefined, (cause) => {
        if (!this.#take(entry)) return;
        entry.reject(
          new RpcError(
            "RPC_CLOSED",
            `cannot send request "${method}" (id ${id}): the write failed (${messageOf(cause)})`,
            { cause, details: { id, method } },
          ),
        );
      });
    }
    return promise;
  }

  /**
   * Sends a notification (no response). The promise settles once `send` accepted the bytes;
   * it may be ignored: a failure is then also reported to `onProtocolError`, never unhandled.
   *
   * @param method the method name
   * @param params an object or array, or `undefined` to omit
   * @throws {TypeError} when `params` is not JSON-serialisable
   */
  notify(method: string, params?: unknown): Promise<void> {
    if (this.#closed) {
      const closed = Promise.reject(
        new RpcError(
          "RPC_CLOSED",
          `cannot send notification "${method}": the connection is closed`,
          {
            details: { method },
          },
        ),
      );
      closed.catch(ignore);
      return closed;
    }
    const written = this.#write(encodeMessage({ jsonrpc: "2.0", method, params }));
    if (written === undefined) return RESOLVED;
    written.catch((cause) => this.#writeFailed(`notification "${method}"`, cause));
    return written;
  }

  /**
   * Feeds bytes from the other side. Never throws for malformed input; handlers run
   * synchronously up to their first `await`.
   */
  receive(chunk: Uint8Array): void {
    if (this.#closed) return;
    this.#decoder.push(chunk, this.#onLine, this.#onFramingError);
  }

  /**
   * Ends the connection (call it at end of input, or to shut down). A partial last line is
   * reported as `RPC_TRUNCATED`; pending requests reject with `RPC_CLOSED` (cause: `reason`);
   * running handlers are aborted and their results are not sent. Idempotent.
   */
  close(reason?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#decoder.end(this.#onFramingError);
    const pending = [...this.#pending.values()];
    for (const entry of pending) {
      this.#take(entry);
      entry.reject(
        new RpcError(
          "RPC_CLOSED",
          `the connection closed before request "${entry.method}" (id ${entry.id}) was answered`,
          { cause: reason, details: { id: entry.id, method: entry.method } },
        ),
      );
    }
    const running = [...this.#inFlight.values()];
    this.#inFlight.clear();
    this.#abandoned.clear();
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

  /** Closes the peer (see {@linkcode JsonRpcPeer.close}). */
  [Symbol.asyncDispose](): Promise<void> {
    this.close(new RpcError("RPC_CLOSED", "the JSON-RPC peer was disposed"));
    return RESOLVED;
  }

  // ---- incoming ---------------------------------------------------------------------------

  readonly #onFramingError = (error: RpcError): void => {
    this.#protocolError(error);
  };

  readonly #onLine = (line: string): void => {
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch (cause) {
      this.#protocolError(
        new RpcError(
          "RPC_INVALID_JSON",
          `received a line that is not JSON (${messageOf(cause)}): ${preview(line)}`,
          { cause, details: { preview: preview(line) } },
        ),
      );
      this.#respondError(null, JsonRpcErrorCode.PARSE_ERROR, "Parse error: the line is not JSON");
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      const what = Array.isArray(message) ? "a batch (array)" : `a JSON ${typeOf(message)}`;
      this.#invalid(`received ${what}; expected one JSON-RPC object per line`, line);
      this.#respondError(
        null,
        JsonRpcErrorCode.INVALID_REQUEST,
        `Invalid Request: expected one JSON-RPC object per line, got ${what}`,
      );
      return;
    }
    const m = message as Record<string, unknown>;
    if (m.method !== undefined) {
      this.#onRequestOrNotification(m, line);
    } else if ("result" in m || "error" in m) {
      this.#onResponse(m, line);
    } else {
      this.#invalid("received an object with neither method nor result/error", line);
      this.#respondError(
        null,
        JsonRpcErrorCode.INVALID_REQUEST,
        "Invalid Request: neither method nor result/error",
      );
    }
  };

  #onRequestOrNotification(m: Record<string, unknown>, line: string): void {
    const { method, params, id } = m;
    const hasId = "id" in m;
    let problem: string | undefined;
    if (typeof method !== "string") problem = `"method" must be a string`;
    else if (m.jsonrpc !== "2.0") problem = `"jsonrpc" must be "2.0"`;
    else if (hasId && !isId(id)) problem = `"id" must be a string or a finite number`;
    else if (params !== undefined && (typeof params !== "object" || params === null)) {
      problem = `"params" must be an object or an array`;
    }
    if (problem !== undefined) {
      const replyId = hasId && isId(id) ? id : null;
      this.#invalid(`received an invalid request: ${problem}`, line, replyId);
      this.#respondError(replyId, JsonRpcErrorCode.INVALID_REQUEST, `Invalid Request: ${problem}`);
      return;
    }
    if (!hasId) {
      this.#onNotificationMessage(method as string, params, line);
      return;
    }
    this.#serve(id as RpcId, method as string, params);
  }

  #onNotificationMessage(method: string, params: unknown, line: string): void {
    if (method === CANCEL_METHOD) {
      const id = (params as { id?: unknown } | undefined)?.id;
      if (!isId(id)) {
        this.#invalid(`received "$/cancel" without a valid params.id`, line);
        return;
      }
      // A missing id is normal: the handler may have finished before the cancel arrived.
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
      return;
    }
    if (this.#onNotification === undefined) return;
    try {
      const result = this.#onNotification(method, params);
      if (isPromiseLike(result)) {
        result.then(undefined, (cause) => this.#notificationFailed(method, cause));
      }
    } catch (cause) {
      this.#notificationFailed(method, cause);
    }
  }

  #notificationFailed(method: string, cause: unknown): void {
    this.#protocolError(
      new RpcError(
        "RPC_INVALID_MESSAGE",
        `the notification "${method}" could not be handled: ${messageOf(cause)}`,
        { cause, details: { method } },
      ),
    );
  }

  #serve(id: RpcId, method: string, params: unknown): void {
    if (this.#inFlight.has(id)) {
      this.#protocolError(
        new RpcError(
          "RPC_DUPLICATE_ID",
          `received request "${method}" with id ${
            JSON.stringify(id)
          } while a request with that id is still being served; it was ignored. ` +
            `The caller must use a fresh id per request.`,
          { details: { id, method } },
        ),
      );
      return;
    }
    const handler = this.#handlers.get(method);
    if (handler === undefined) {
      this.#respondError(
        id,
        JsonRpcErrorCode.METHOD_NOT_FOUND,
        `Method not found: "${method}"`,
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
      bytes = encodeMessage({ jsonrpc: "2.0", id: ctx.id, result: result ?? null });
    } catch (cause) {
      this.#respondError(
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
    this.#respondError(ctx.id, code, messageOf(error), data);
  }

  #onResponse(m: Record<string, unknown>, line: string): void {
    const { id, error } = m;
    const entry = typeof id === "number" ? this.#pending.get(id) : undefined;
    let problem: string | undefined;
    if (m.jsonrpc !== "2.0") problem = `"jsonrpc" must be "2.0"`;
    else if ("result" in m && "error" in m) problem = `it has both "result" and "error"`;
    else if (id !== null && !isId(id)) problem = `"id" must be a string, a number or null`;
    else if ("error" in m && !isErrorObject(error)) {
      problem = `"error" must be an object with an integer "code" and a string "message"`;
    }
    if (problem !== undefined) {
      const err = new RpcError("RPC_INVALID_MESSAGE", `received an invalid response: ${problem}`, {
        details: { id, preview: preview(line) },
      });
      this.#protocolError(err);
      // The caller would otherwise wait for a response that will never be valid.
      if (entry !== undefined && this.#take(entry)) entry.reject(err);
      return;
    }
    if (entry === undefined) {
      if (id === null && "error" in m) {
        // The other side could not make sense of something we sent.
        const { code, message, data } = error as { code: number; message: string; data?: unknown };
        this.#protocolError(new RpcRemoteError(code, message, { data, id: null }));
        return;
      }
      if (typeof id === "number" && this.#abandoned.delete(id)) return;
      this.#protocolError(
        new RpcError(
          "RPC_UNKNOWN_ID",
          `received a response for id ${
            JSON.stringify(id)
          }, which matches no pending request; it was ignored`,
          { details: { id } },
        ),
      );
      return;
    }
    this.#take(entry);
    if ("error" in m) {
      const { code, message, data } = error as { code: number; message: string; data?: unknown };
      entry.reject(new RpcRemoteError(code, message, { method: entry.method, id: entry.id, data }));
    } else {
      entry.resolve(m.result);
    }
  }

  // ---- our requests ------------------------------------------------------------------------

  /** Removes `entry` from the pending map and clears its timer and listener, exactly once. */
  #take(entry: PendingRequest): boolean {
    if (this.#pending.get(entry.id) !== entry) return false;
    this.#pending.delete(entry.id);
    entry.signal?.removeEventListener("abort", entry);
    if (entry.deadline !== Infinity && --this.#timed === 0) {
      clearTimeout(this.#sweepTimer);
      this.#sweepTimer = undefined;
    }
    return true;
  }

  #arm(at: number): void {
    clearTimeout(this.#sweepTimer);
    this.#sweepAt = at;
    this.#sweepTimer = setTimeout(this.#sweep, Math.max(0, Math.ceil(at - performance.now())));
  }

  /** Times out every request past its deadline, then re-arms for the earliest one left. */
  readonly #sweep = (): void => {
    this.#sweepTimer = undefined;
    // Timers may fire a fraction of a millisecond early against performance.now().
    const now = performance.now() + 1;
    let next = Infinity;
    const expired: PendingRequest[] = [];
    for (const entry of this.#pending.values()) {
      if (entry.deadline <= now) expired.push(entry);
      else if (entry.deadline < next) next = entry.deadline;
    }
    for (const entry of expired) this.#onTimeout(entry);
    if (next !== Infinity && !this.#closed) this.#arm(next);
  };

  readonly #onAbort = (entry: PendingRequest): void => {
    if (!this.#take(entry)) return;
    this.#abandon(entry.id);
    entry.reject(abortError(entry.method, entry.id, entry.signal?.reason));
  };

  readonly #onTimeout = (entry: PendingRequest): void => {
    if (!this.#take(entry)) return;
    this.#abandon(entry.id);
    const reason = new DOMException(
      `request "${entry.method}" (id ${entry.id}) got no response within ${entry.timeoutMs} ms`,
      "TimeoutError",
    );
    entry.reject(
      new RpcError("RPC_TIMEOUT", `${reason.message}; it was cancelled`, {
        cause: reason,
        details: { id: entry.id, method: entry.method, timeoutMs: entry.timeoutMs },
      }),
    );
  };

  /** Tells the other side to stop, and remembers the id so its late response is not an error. */
  #abandon(id: number): void {
    this.#abandoned.add(id);
    if (this.#abandoned.size > ABANDONED_LIMIT) {
      this.#abandoned.delete(this.#abandoned.values().next().value!);
    }
    if (!this.#closed) this.notify(CANCEL_METHOD, { id });
  }

  // ---- writing ------------------------------------------------------------------------------

  #respondError(id: RpcId | null, code: number, message: string, data?: unknown): void {
    if (this.#closed) return;
    const error = data === undefined ? { code, message } : { code, message, data };
    let bytes: Uint8Array;
    try {
      bytes = encodeMessage({ jsonrpc: "2.0", id, error });
    } catch {
      // `data` was not serialisable; the code and message still are.
      bytes = encodeMessage({ jsonrpc: "2.0", id, error: { code, message } });
    }
    this.#writeResponse(bytes);
  }

  #writeResponse(bytes: Uint8Array): void {
    const written = this.#write(bytes);
    if (written !== undefined) written.then(undefined, this.#responseWriteFailed);
  }

  readonly #responseWriteFailed = (cause: unknown): void => {
    this.#writeFailed("a response", cause);
  };

  #writeFailed(what: string, cause: unknown): void {
    this.#protocolError(
      new RpcError("RPC_CLOSED", `could not send ${what}: the write failed (${messageOf(cause)})`, {
        cause,
      }),
    );
  }

  /**
   * Sends `bytes` after every earlier message. `undefined` means written synchronously;
   * otherwise the promise settles with this write (callers attach a rejection handler).
   */
  #write(bytes: Uint8Array): Promise<void> | undefined {
    if (this.#writing) {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      this.#queue.push({ bytes, resolve, reject });
      return promise;
    }
    return this.#sendNow(bytes);
  }

  #sendNow(bytes: Uint8Array): Promise<void> | undefined {
    let result: unknown;
    try {
      result = this.#send(bytes);
    } catch (error) {
      return Promise.reject(error);
    }
    if (!isPromiseLike(result)) return undefined;
    this.#writing = true;
    const done = Promise.resolve(result) as Promise<void>;
    done.then(this.#drain, this.#drain);
    return done;
  }

  /** Runs after an asynchronous send settled: sends queued messages until one is async. */
  readonly #drain = (): void => {
    this.#writing = false;
    const queue = this.#queue;
    while (this.#queueHead < queue.length) {
      const item = queue[this.#queueHead]!;
      queue[this.#queueHead++] = undefined;
      const written = this.#sendNow(item.bytes);
      if (written === undefined) {
        item.resolve();
        continue;
      }
      written.then(item.resolve, item.reject);
      if (this.#writing) {
        // A queue that never empties would otherwise keep growing at the front.
        if (this.#queueHead >= QUEUE_COMPACT_AT && this.#queueHead * 2 >= queue.length) {
          this.#queue = queue.slice(this.#queueHead);
          this.#queueHead = 0;
        }
        return;
      }
    }
    queue.length = 0;
    this.#queueHead = 0;
  };

  #protocolError(error: RpcError): void {
    this.#protocolErrors++;
    try {
      this.#onProtocolError?.(error);
    } catch {
      // A faulty reporter must not take the connection down.
    }
  }

  #invalid(problem: string, line: string, id?: RpcId | null): void {
    this.#protocolError(
      new RpcError("RPC_INVALID_MESSAGE", problem, {
        details: { ...(id === undefined ? {} : { id }), preview: preview(line) },
      }),
    );
  }
}

const RESOLVED: Promise<void> = Promise.resolve();

function ignore(): void {}

function abortError(method: string, id: number | undefined, reason: unknown): RpcError {
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

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function";
}

function isId(value: unknown): value is RpcId {
  return typeof value === "string" || (typeof value === "number" && Number.isFinite(value));
}

function isErrorObject(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const { code, message } = value as { code?: unknown; message?: unknown };
  return Number.isSafeInteger(code) && typeof message === "string";
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "string") return error;
  if (
    typeof error === "object" && error !== null &&
    typeof (error as { message?: unknown }).message === "string"
  ) {
    return (error as { message: string }).message;
  }
  return String(error);
}

function typeOf(value: unknown): string {
  return value === null ? "null" : typeof value;
}

function preview(line: string): string {
  return line.length <= 120 ? line : `${line.slice(0, 117)}...`;
}
