import { clipText, MAX_ID_LENGTH, messageOf, preview, typeOf } from "./_error_text.ts";
import { isId } from "./_is_id.ts";
import { isPromiseLike } from "./_is_promise_like.ts";
import { abortError, isBacklog, writeFailedError } from "./_peer_errors.ts";
import { PendingRequest, PendingRequests } from "./_pending_requests.ts";
import { ServedRequests } from "./_served_requests.ts";
import { DEFAULT_MAX_QUEUED_WRITE_BYTES, type SendFn, WriteQueue } from "./_write_queue.ts";
import { encodeFrame, FrameDecoder } from "./frame_decoder.ts";
import { encodeMessage, NdjsonDecoder } from "./ndjson_decoder.ts";
import { JsonRpcErrorCode, RpcError } from "./rpc_error.ts";
import type { RpcHandler, RpcId } from "./rpc_handler.ts";

export type { SendFn } from "./_write_queue.ts";
export { DEFAULT_MAX_QUEUED_WRITE_BYTES } from "./_write_queue.ts";

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
  /**
   * Writes encoded messages to the other side: one complete message, or several gathered into
   * one buffer when they queued behind a pending asynchronous `send` (or `gatherWrites`).
   */
  readonly send: SendFn;
  /**
   * The longest accepted incoming line in bytes.
   * @default {16 MiB}
   */
  readonly maxLineBytes?: number;
  /**
   * The most bytes of outgoing messages that may wait while an asynchronous `send` is pending
   * (the other side is slow to read). A message that would queue more fails the peer's
   * output for good: the queued messages are dropped, an `RPC_WRITE_BACKLOG`
   * {@linkcode RpcError} is reported to `onProtocolError` (once), requests waiting to be
   * written and every later one reject with `RPC_CLOSED` (cause: that error), and nothing
   * more is sent. Whoever owns the connection should then close it (the host kills the
   * plugin). A synchronous `send` never queues.
   * @default {64 MiB}
   */
  readonly maxQueuedWriteBytes?: number;
  /**
   * Receives malformed input (framing, JSON, envelope, unknown or duplicate ids), error
   * responses that name no request, failed writes, a full write queue (`RPC_WRITE_BACKLOG`),
   * and exceptions of `onNotification`.
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
  /**
   * Whether incoming bytes may hold length-prefixed frames (`lp1`, README "Wire protocol")
   * besides NDJSON lines. Set it on the side that announces `framing: ["lp1"]`.
   * @default {false}
   */
  readonly acceptFrames?: boolean;
  /**
   * Whether the messages written in one tick go out gathered in one `send` (see the
   * `WriteQueue`'s `gatherTick`): fewer writes when many calls are in flight; for an
   * asynchronous `send` such as a pipe's writer.
   * @default {false}
   */
  readonly gatherWrites?: boolean;
}
const CANCEL_METHOD = "$/cancel";

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
  readonly #decoder: NdjsonDecoder | FrameDecoder;
  #encode: (message: unknown) => Uint8Array = encodeMessage;
  readonly #onProtocolError: ((error: RpcError) => void) | undefined;
  readonly #onNotification: JsonRpcPeerOptions["onNotification"];
  readonly #writer: WriteQueue;
  readonly #pending: PendingRequests;
  readonly #served: ServedRequests;
  #nextId = 1;
  #closed = false;
  #protocolErrors = 0;

  /**
   * Creates a peer; it sends nothing until asked to.
   *
   * @param options `send` is required; see {@linkcode JsonRpcPeerOptions}
   */
  constructor(options: JsonRpcPeerOptions) {
    if (typeof options.send !== "function") {
      throw new TypeError(`JsonRpcPeer needs a send function, got ${typeof options.send}`);
    }
    this.#writer = new WriteQueue(options.send, {
      maxQueuedBytes: options.maxQueuedWriteBytes ?? DEFAULT_MAX_QUEUED_WRITE_BYTES,
      onBacklog: (error) => this.#protocolError(error),
      gatherTick: options.gatherWrites ?? false,
    });
    this.#decoder = options.acceptFrames
      ? new FrameDecoder({ maxLineBytes: options.maxLineBytes })
      : new NdjsonDecoder({ maxLineBytes: options.maxLineBytes });
    this.#onProtocolError = options.onProtocolError;
    this.#onNotification = options.onNotification;
    this.#pending = new PendingRequests(this.#cancel, this.#report);
    this.#served = new ServedRequests(this.#writer, this.#report, (m) => this.#encode(m));
    for (const [method, handler] of Object.entries(options.handlers ?? {})) {
      this.handle(method, handler);
    }
  }

  /** Requests of ours still waiting for a response. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Whether a request of ours with this `id` is waiting for its response (reads only). */
  isPending(id: number): boolean {
    return this.#pending.has(id);
  }

  /** Incoming requests whose handler has not finished yet. */
  get inFlightCount(): number {
    return this.#served.size;
  }

  /**
   * Answers an incoming request with a JSON-RPC error without having read it (the host's log
   * gate refuses a plugin's request line unparsed, knowing only its id).
   */
  respondError(id: RpcId, code: number, message: string, data?: unknown): void {
    this.#served.respondError(id, code, message, data);
  }

  /** Messages waiting for an earlier asynchronous `send` to settle. */
  get queuedWriteCount(): number {
    return this.#writer.size;
  }

  /** Bytes of the messages waiting for an earlier asynchronous `send` to settle. */
  get queuedWriteBytes(): number {
    return this.#writer.queuedBytes;
  }

  /** How many protocol errors were reported so far. */
  get protocolErrorCount(): number {
    return this.#protocolErrors;
  }

  /** Whether messages are sent as length-prefixed frames (after {@linkcode JsonRpcPeer.useFrames}). */
  get framed(): boolean {
    return this.#encode === encodeFrame;
  }

  /**
   * Sends every later message as a length-prefixed frame (`lp1`) instead of an NDJSON line.
   * Call it only once the other side announced that it accepts frames (its `$/ready`
   * `framing` list): messages already written stay lines, which it accepts too. Idempotent.
   */
  useFrames(): void {
    this.#encode = encodeFrame;
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
    this.#served.register(method, handler);
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
      bytes = this.#encode({ jsonrpc: "2.0", id, method, params });
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
    const entry = new PendingRequest(id, method, timeoutMs, resolve, reject, this.#pending);
    this.#pending.set(id, entry);
    if (timeoutMs !== undefined) this.#pending.expireAfter(entry, timeoutMs);
    if (signal !== undefined) {
      entry.signal = signal;
      signal.addEventListener("abort", entry, { once: true });
    }
    const written = this.#writer.write(bytes);
    if (written !== undefined) {
      written.then(undefined, (cause) => {
        if (!this.#pending.take(entry)) return;
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
    const written = this.#writer.write(this.#encode({ jsonrpc: "2.0", method, params }));
    if (written === undefined) return RESOLVED;
    written.catch((cause) => {
      if (!isBacklog(cause)) this.#report(writeFailedError(`notification "${method}"`, cause));
    });
    return written;
  }

  /**
   * Feeds bytes from the other side. Never throws for malformed input; handlers run
   * synchronously up to their first `await`.
   */
  receive(chunk: Uint8Array): void {
    if (this.#closed) return;
    this.#decoder.push(chunk, this.#onLine, this.#report);
  }

  /**
   * Ends the connection (call it at end of input, or to shut down). A partial last line is
   * reported as `RPC_TRUNCATED`; pending requests reject with `RPC_CLOSED` (cause: `reason`);
   * running handlers are aborted and their results are not sent. Idempotent.
   */
  close(reason?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#decoder.end(this.#report);
    this.#pending.close(reason);
    this.#served.close(reason);
  }

  /** Closes the peer (see {@linkcode JsonRpcPeer.close}). */
  [Symbol.asyncDispose](): Promise<void> {
    this.close(new RpcError("RPC_CLOSED", "the JSON-RPC peer was disposed"));
    return RESOLVED;
  }

  // ---- incoming ---------------------------------------------------------------------------

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
      this.#served.respondError(
        null,
        JsonRpcErrorCode.PARSE_ERROR,
        "Parse error: the line is not JSON",
      );
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) {
      const what = Array.isArray(message) ? "a batch (array)" : `a JSON ${typeOf(message)}`;
      this.#invalid(`received ${what}; expected one JSON-RPC object per line`, line);
      this.#served.respondError(
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
      this.#pending.settle(m, line);
    } else {
      this.#invalid("received an object with neither method nor result/error", line);
      this.#served.respondError(
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
    else if (typeof id === "string" && id.length > MAX_ID_LENGTH) {
      problem = `a string "id" must be at most ${MAX_ID_LENGTH} characters, got ${id.length}`;
    } else if (params !== undefined && (typeof params !== "object" || params === null)) {
      problem = `"params" must be an object or an array`;
    }
    if (problem !== undefined) {
      const replyId = hasId && isId(id) && !(typeof id === "string" && id.length > MAX_ID_LENGTH)
        ? id
        : null;
      this.#invalid(`received an invalid request: ${problem}`, line, replyId);
      this.#served.respondError(
        replyId,
        JsonRpcErrorCode.INVALID_REQUEST,
        `Invalid Request: ${problem}`,
      );
      return;
    }
    if (!hasId) {
      this.#onNotificationMessage(method as string, params, line);
      return;
    }
    this.#served.serve(id as RpcId, method as string, params);
  }

  #onNotificationMessage(method: string, params: unknown, line: string): void {
    if (method === CANCEL_METHOD) {
      const id = (params as { id?: unknown } | undefined)?.id;
      if (!isId(id)) {
        this.#invalid(`received "$/cancel" without a valid params.id`, line);
        return;
      }
      this.#served.cancel(id);
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
        `the notification "${clipText(method)}" could not be handled: ${messageOf(cause)}`,
        { cause, details: { method: clipText(method) } },
      ),
    );
  }

  // ---- reporting --------------------------------------------------------------------------

  /** Sends `$/cancel` for a request of ours given up on (by abort or timeout). */
  readonly #cancel = (id: number): void => {
    if (!this.#closed) this.notify(CANCEL_METHOD, { id });
  };

  readonly #report = (error: RpcError): void => {
    this.#protocolError(error);
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
