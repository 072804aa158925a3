import type { RpcId } from "../rpc/mod.ts";
import { compileSchema, type Validator } from "../schema/json_schema.ts";

/** `$/stream` openings kept for requests not read yet (the host sends one right before each). */
const MAX_OPENINGS = 4096;
/** Chunks `ctx.progress()` may hold beyond the credit before it throws (not awaited in a loop). */
export const MAX_QUEUED_PROGRESS = 1024;
/** What the `$/chunk` envelope adds to the chunk's JSON, at most (id and seq included). */
const ENVELOPE_BYTES = 128;
const encoder = new TextEncoder();

/** Sends one notification to the host. */
export type Notify = (method: string, params: unknown) => void;

/** Sends a chunk of the running stream; `undefined` is sent as `null`. */
export type Progress = (chunk: unknown) => Promise<void>;

/** What the host asked for in `$/stream`. */
interface Opening {
  readonly credit: number;
  readonly maxChunkBytes: number;
}

/** An error the SDK sends with a stable code in `data.code`, as the host's services do. */
class StreamFailure extends Error {
  readonly data: { code: string; details: Record<string, unknown> };
  constructor(code: string, message: string, details: Record<string, unknown>) {
    super(message);
    this.name = "StreamError";
    this.data = { code, details };
  }
}

/** Whether a handler's value streams: an async iterable, or a (sync) generator object. */
export function isStreamable(value: unknown): value is AsyncIterable<unknown> | Iterator<unknown> {
  if (value === null || typeof value !== "object") return false;
  if (typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") return true;
  // Arrays, strings and other iterables are plain JSON results; only a generator streams.
  return Object.prototype.toString.call(value) === "[object Generator]";
}

/** Lets a producer go: `return()` of its iterator, errors ignored. */
function release(value: unknown): void {
  try {
    const it = value as { return?: () => unknown };
    const r = typeof it.return === "function" ? it.return() : undefined;
    if (r instanceof Promise) r.catch(() => {});
  } catch { /* a producer that fails to stop is stopped anyway: nothing more is pulled */ }
}

/**
 * The plugin's side of streaming (README "Streaming"). The host opens a stream with
 * `$/stream {request, credit, max_chunk_bytes}` right before the request itself; the handler's
 * async iterable (or `ctx.progress()`) is then sent as `$/chunk {request, seq, data}`, one per
 * unit of credit, and the response `{chunks, result}` ends it. More credit comes as
 * `$/credit {request, n}`; without credit the iterator is not pulled, so a host that stops
 * reading holds the producer. `$/cancel` aborts `ctx.signal` and calls the iterator's
 * `return()`.
 *
 * A request without `$/stream` (a plain call, an older host) is a plain call: `ctx.progress()`
 * drops its chunks, and a handler that returns an async iterable or a generator is answered
 * with an error coded `STREAM_REQUIRED` (its iterator is closed unread).
 */
export class StreamSender {
  readonly #notify: Notify;
  readonly #chunkSchema: (method: string) => unknown;
  readonly #checkResult: (method: string, result: unknown) => unknown;
  readonly #validators = new WeakMap<object, Validator>();
  readonly #openings = new Map<RpcId, Opening>();
  readonly #open = new Map<RpcId, OutStream>();

  /**
   * @param notify sends a notification to the host (the peer's `notify`)
   * @param chunkSchema the `methods.<m>.chunk` schema the host sent (`$/configure`), if any:
   *   each chunk is checked against it before it is sent
   * @param checkResult checks a stream's final result (the method's `result` schema); throws
   *   to send an error instead
   */
  constructor(
    notify: Notify,
    chunkSchema: (method: string) => unknown = () => undefined,
    checkResult: (method: string, result: unknown) => unknown = (_m, r) => r,
  ) {
    this.#notify = notify;
    this.#chunkSchema = chunkSchema;
    this.#checkResult = checkResult;
  }

  #validator(method: string): Validator | undefined {
    const schema = this.#chunkSchema(method);
    if (schema === undefined || schema === true) return undefined;
    if (typeof schema !== "object" || schema === null) {
      return compileSchema(schema, { root: "chunk", linearPatterns: false });
    }
    let v = this.#validators.get(schema);
    if (v === undefined) {
      this.#validators.set(
        schema,
        v = compileSchema(schema, { root: "chunk", linearPatterns: false }),
      );
    }
    return v;
  }

  /** Takes `$/stream` and `$/credit`; false for any other notification. */
  readonly onNotification = (method: string, params: unknown): boolean => {
    if (method !== "$/stream" && method !== "$/credit") return false;
    const p = (params ?? {}) as Record<string, unknown>;
    const id = p.request;
    if (typeof id !== "number" && typeof id !== "string") return true;
    if (method === "$/stream") {
      const credit = p.credit;
      const max = p.max_chunk_bytes;
      if (!Number.isSafeInteger(credit) || (credit as number) < 0) return true;
      if (this.#openings.size >= MAX_OPENINGS) {
        this.#openings.delete(this.#openings.keys().next().value!);
      }
      this.#openings.set(id, {
        credit: credit as number,
        maxChunkBytes: Number.isSafeInteger(max) && (max as number) > 0
          ? max as number
          : Number.MAX_SAFE_INTEGER,
      });
      return true;
    }
    // Credit for a stream that has ended meanwhile is normal: it crossed the response.
    const n = p.n;
    if (Number.isSafeInteger(n) && (n as number) > 0) this.#open.get(id)?.grant(n as number);
    return true;
  };

  /**
   * Runs a handler for request `id`: `invoke` gets the `progress` function of its context.
   * Returns the handler's value (a plain call) or a promise of `{chunks, result}` (a stream).
   */
  run(
    id: RpcId,
    method: string,
    signal: AbortSignal,
    invoke: (progress: Progress) => unknown,
  ): unknown {
    const opening = this.#openings.get(id);
    if (opening === undefined) {
      const value = invoke(dropProgress);
      if (value instanceof Promise) return value.then((v) => plain(v, method));
      return plain(value, method);
    }
    this.#openings.delete(id);
    const stream = new OutStream(
      id,
      method,
      opening,
      signal,
      this.#notify,
      this.#validator(method),
    );
    this.#open.set(id, stream);
    let value: unknown;
    try {
      value = invoke(stream.progress);
    } catch (e) {
      this.#open.delete(id);
      throw e;
    }
    return stream.finish(value)
      .then(({ chunks, result }) => ({ chunks, result: this.#checkResult(method, result) }))
      .finally(() => this.#open.delete(id));
  }
}

const dropProgress: Progress = () => Promise.resolve();

function plain(value: unknown, method: string): unknown {
  if (!isStreamable(value)) return value;
  release(value);
  throw new StreamFailure(
    "STREAM_REQUIRED",
    `method "${method}" streams its result: call it with host.stream(), or over HTTP with ` +
      "Accept: text/event-stream or application/x-ndjson, and declare methods." + method +
      ".stream: true in the manifest",
    { method },
  );
}

interface Queued {
  readonly data: unknown;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** One stream being sent: its credit, its sequence numbers, what `progress()` queued. */
class OutStream {
  readonly #id: RpcId;
  readonly #method: string;
  readonly #maxChunkBytes: number;
  readonly #signal: AbortSignal;
  readonly #notify: Notify;
  readonly #check: Validator | undefined;
  #credit: number;
  #seq = 0;
  readonly #queue: Queued[] = [];
  #wake: (() => void) | undefined;

  constructor(
    id: RpcId,
    method: string,
    o: Opening,
    signal: AbortSignal,
    notify: Notify,
    check: Validator | undefined,
  ) {
    this.#check = check;
    this.#id = id;
    this.#method = method;
    this.#credit = o.credit;
    this.#maxChunkBytes = o.maxChunkBytes;
    this.#signal = signal;
    this.#notify = notify;
    signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** More credit from the host: queued chunks go first, then the iterator is pulled again. */
  grant(n: number): void {
    this.#credit += n;
    while (this.#credit > 0 && this.#queue.length > 0) {
      const q = this.#queue.shift()!;
      try {
        this.#send(q.data);
        q.resolve();
      } catch (e) {
        q.reject(e);
      }
    }
    this.#wakeUp();
  }

  /** `ctx.progress`: resolves once the chunk is sent (at once while there is credit). */
  readonly progress: Progress = (data) => {
    if (this.#signal.aborted) return Promise.reject(this.#signal.reason);
    if (this.#credit > 0 && this.#queue.length === 0) {
      try {
        this.#send(data);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e);
      }
    }
    if (this.#queue.length >= MAX_QUEUED_PROGRESS) {
      // Thrown, not rejected: a loop that does not await progress() must stop here.
      throw new RangeError(
        `ctx.progress() of "${this.#method}": ${MAX_QUEUED_PROGRESS} chunks are waiting for ` +
          "the host to read; await ctx.progress(...) so the producer waits too",
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#queue.push({ data, resolve, reject });
    return promise;
  };

  /** Sends what the handler produced (pulling its iterator while there is credit), then ends. */
  async finish(value: unknown): Promise<{ chunks: number; result: unknown }> {
    try {
      let v = await value;
      if (isStreamable(v)) v = await this.#pump(v);
      // Chunks progress() queued go out before the response (which ends the stream).
      while (this.#queue.length > 0) await this.#creditOrAbort();
      return { chunks: this.#seq, result: v ?? null };
    } finally {
      this.#signal.removeEventListener("abort", this.#onAbort);
      this.#wakeUp();
    }
  }

  async #pump(source: AsyncIterable<unknown> | Iterator<unknown>): Promise<unknown> {
    const it = Symbol.asyncIterator in source
      ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
      : source as Iterator<unknown>;
    try {
      for (;;) {
        await this.#creditOrAbort();
        const step = await it.next();
        if (step.done) return step.value;
        if (this.#signal.aborted) throw this.#signal.reason;
        this.#send(step.value);
      }
    } catch (e) {
      release(it);
      throw e;
    }
  }

  /** Resolves when there is credit and nothing queued before; rejects once cancelled. */
  async #creditOrAbort(): Promise<void> {
    for (;;) {
      if (this.#signal.aborted) throw this.#signal.reason;
      if (this.#credit > 0 && this.#queue.length === 0) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  readonly #onAbort = (): void => {
    for (const q of this.#queue.splice(0)) q.reject(this.#signal.reason);
    this.#wakeUp();
  };

  #send(data: unknown): void {
    const seq = this.#seq;
    const problem = this.#check?.(data ?? null);
    if (problem !== undefined) {
      throw new StreamFailure(
        "STREAM_CHUNK_INVALID",
        `chunk ${seq} of "${this.#method}" fails its methods.${this.#method}.chunk schema: ` +
          problem,
        { method: this.#method, seq, problem },
      );
    }
    let json: string | undefined;
    try {
      json = JSON.stringify(data ?? null);
    } catch (cause) {
      throw new StreamFailure(
        "STREAM_CHUNK_INVALID",
        `chunk ${seq} of "${this.#method}" is not JSON-serialisable: ${
          cause instanceof Error ? cause.message : String(cause)
        }`,
        { method: this.#method, seq },
      );
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: only a long chunk is measured exactly.
    const max = this.#maxChunkBytes - ENVELOPE_BYTES;
    if (json.length * 3 > max) {
      const bytes = encoder.encode(json).length;
      if (bytes > max) {
        throw new StreamFailure(
          "STREAM_CHUNK_TOO_LARGE",
          `chunk ${seq} of "${this.#method}" is ${bytes} bytes of JSON; this stream takes at ` +
            `most ${max} (the host's max_chunk_bytes, ${this.#maxChunkBytes}, less the ` +
            "envelope; the host sets it to maxBufferedBytes / window, at most max_line_bytes): " +
            "send smaller chunks, or have the consumer open the stream with a smaller window " +
            "or a larger maxBufferedBytes",
          { method: this.#method, seq, bytes, max },
        );
      }
    }
    this.#credit--;
    this.#seq++;
    // Key order matters: the host's log gate passes `{"jsonrpc":"2.0","method":"$/chunk",
    // "params":{"request":<id>,` uncharged while the stream has credit.
    this.#notify("$/chunk", { request: this.#id, seq, data: data ?? null });
  }
}
