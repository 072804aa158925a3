import { type ChunkSink, MAX_STREAM_WINDOW } from "../runtime/mod.ts";
import { DEFAULT_STREAM_BUFFER_BYTES, MIN_CHUNK_BYTES } from "../runtime/plugin_streams.ts";

/** Options of {@linkcode PluginHost.stream}. */
export interface StreamOptions {
  /** Aborting it cancels the stream (the plugin gets `$/cancel`). */
  signal?: AbortSignal;
  /**
   * Deadline of the whole stream in ms, from the request to its last chunk. Default: the
   * method's timeout, as for `host.call` (`plugins.<name>.timeout_ms`, `methods.<m>.timeout_ms`,
   * ...). It keeps running while the consumer does not read (so a stalled consumer cannot hold
   * the plugin's bulkhead slot forever); when it passes while the plugin waits for credit the
   * stream fails with `STREAM_NOT_READ`, which the circuit breaker does not count, else with
   * `PLUGIN_TIMEOUT`.
   */
  timeoutMs?: number;
  /**
   * The longest wait in ms for the plugin's next chunk while it has credit (`STREAM_IDLE` when
   * it passes); time your loop spends between reads does not count. Default: none.
   */
  idleTimeoutMs?: number;
  /**
   * Chunks the host holds for this stream at most (the plugin's credit): a consumer that stops
   * reading pauses the plugin once this many are unread. 1 to 4096. Default: 64.
   */
  window?: number;
  /**
   * Bytes of chunks (as JSON) the host holds for this stream at most: the plugin may send
   * chunks of at most `floor(maxBufferedBytes / window)` bytes (and at most `max_line_bytes`;
   * its SDK refuses a bigger one with `STREAM_CHUNK_TOO_LARGE`, the host ends the stream with
   * `STREAM_PROTOCOL` if one comes anyway). At least 1 KiB per chunk of the window. Default:
   * 16 MiB (256 KiB chunks with the default window).
   */
  maxBufferedBytes?: number;
}

/** The default credit window of a stream. */
export const DEFAULT_STREAM_WINDOW = 64;

/** Starts the streamed call into `sink`; resolves with its final result. */
export type StartStream = (sink: ChunkSink, signal: AbortSignal) => Promise<unknown>;

type End = { readonly ok: true } | { readonly ok: false; readonly error: unknown };

/**
 * One stream of a plugin method (`host.stream()`): an async iterable of its chunks, in order,
 * and {@linkcode PluginStream.result}, the method's final result. It can be iterated once.
 *
 * The host holds at most `window` unread chunks, each at most `maxBufferedBytes / window`
 * bytes of JSON: it gives the plugin credit for half a window more each time the consumer has
 * read half a window, so a consumer that stops reading pauses the plugin's producer. Leaving the loop early (`break`, `return`, a throw) or
 * {@linkcode PluginStream.cancel} cancels the stream: the plugin gets `$/cancel`, its iterator's
 * `return()` runs, and `result` rejects with `PLUGIN_CALL_CANCELLED`. The stream fails (the
 * loop throws, `result` rejects) with the call's errors (`PLUGIN_TIMEOUT`, `RATE_LIMITED`,
 * `CIRCUIT_OPEN`, `BULKHEAD_FULL`, `PLUGIN_CRASHED`, ...) and `StreamError`s (`STREAM_PROTOCOL`,
 * `STREAM_IDLE`, `STREAM_NOT_READ`), after the chunks that came before the failure.
 *
 * @example
 * ```ts
 * const stream = host.stream("streamer", "count", { n: 10_000 });
 * for await (const chunk of stream) console.log(chunk);
 * console.log(await stream.result);
 * ```
 */
export class PluginStream implements AsyncIterableIterator<unknown>, ChunkSink, AsyncDisposable {
  /** The credit window (see {@linkcode StreamOptions.window}). */
  readonly window: number;
  /** See {@linkcode StreamOptions.idleTimeoutMs}. */
  readonly idleTimeoutMs: number | undefined;
  /** See {@linkcode StreamOptions.maxBufferedBytes}. */
  readonly maxBufferedBytes: number;
  /**
   * The method's final result (what its generator returned, or its handler's value), once the
   * stream ended; rejects when it failed or was cancelled. Awaiting it does not read chunks.
   */
  readonly result: Promise<unknown>;
  readonly #controller = new AbortController();
  /** Unread chunks: `#queue[#head..]`. */
  #queue: unknown[] = [];
  #head = 0;
  #grant: ((n: number) => void) | undefined;
  /** Chunks read since credit was last granted. */
  #read = 0;
  #received = 0;
  #end: End | undefined;
  #wake: (() => void) | undefined;
  #cancelled = false;

  /**
   * @param start sends the call (through the plugin's pipeline) with this stream as its sink
   * @param options window, idle timeout, signal
   */
  constructor(start: StartStream, options: StreamOptions = {}) {
    const window = options.window ?? DEFAULT_STREAM_WINDOW;
    if (!Number.isInteger(window) || window < 1 || window > MAX_STREAM_WINDOW) {
      throw new RangeError(
        `window must be a whole number from 1 to ${MAX_STREAM_WINDOW}, got ${window}`,
      );
    }
    const idle = options.idleTimeoutMs;
    if (idle !== undefined && !(Number.isInteger(idle) && idle > 0 && idle <= 2_147_483_647)) {
      throw new RangeError(`idleTimeoutMs must be a whole number of ms >= 1, got ${idle}`);
    }
    const bytes = options.maxBufferedBytes ?? DEFAULT_STREAM_BUFFER_BYTES;
    if (!Number.isSafeInteger(bytes) || Math.floor(bytes / window) < MIN_CHUNK_BYTES) {
      throw new RangeError(
        `maxBufferedBytes must be a whole number of at least ${MIN_CHUNK_BYTES} bytes per ` +
          `chunk of the window (${window}), i.e. >= ${MIN_CHUNK_BYTES * window}, got ${bytes}`,
      );
    }
    this.window = window;
    this.idleTimeoutMs = idle;
    this.maxBufferedBytes = bytes;
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#controller.signal])
      : this.#controller.signal;
    this.result = (async () => await start(this, signal))();
    this.result.then(
      () => this.#finish({ ok: true }),
      (error) => this.#finish({ ok: false, error }),
    );
  }

  /** Chunks received and not read yet (at most `window`). */
  get buffered(): number {
    return this.#queue.length - this.#head;
  }

  /** Chunks received so far. */
  get received(): number {
    return this.#received;
  }

  /** Whether the stream has ended (result, failure or cancel). */
  get ended(): boolean {
    return this.#end !== undefined;
  }

  /** @internal The pipeline sent the request: `grant` gives the plugin more credit. */
  open(grant: (n: number) => void): void {
    this.#grant = grant;
    this.#read = 0;
  }

  /** @internal One chunk from the plugin (it never sends more than its credit). */
  push(data: unknown): void {
    this.#received++;
    if (this.#cancelled) return;
    this.#queue.push(data);
    this.#wakeUp();
  }

  /** The next chunk; done once the stream ended and every chunk was read. */
  async next(): Promise<IteratorResult<unknown>> {
    for (;;) {
      if (this.#head < this.#queue.length) {
        const value = this.#queue[this.#head];
        this.#queue[this.#head++] = undefined;
        if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
          this.#queue = this.#queue.slice(this.#head);
          this.#head = 0;
        }
        if (++this.#read * 2 >= this.window && this.#end === undefined) {
          const n = this.#read;
          this.#read = 0;
          this.#grant?.(n);
        }
        return { value, done: false };
      }
      const end = this.#end;
      if (end !== undefined) {
        if (!end.ok) throw end.error;
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** Leaving a `for await` early: cancels the stream (nothing more is read). */
  return(): Promise<IteratorResult<unknown>> {
    this.cancel();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Itself: a stream is iterated once. */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /**
   * Cancels the stream unless it has ended: the plugin gets `$/cancel`, unread chunks are
   * dropped and `result` rejects with `PLUGIN_CALL_CANCELLED`. Idempotent.
   */
  cancel(reason?: unknown): void {
    this.#cancelled = true;
    this.#queue = [];
    this.#head = 0;
    if (this.#end === undefined) {
      this.#controller.abort(reason ?? new DOMException("the stream was cancelled", "AbortError"));
    }
  }

  /** Cancels the stream if it is still running, and waits for it to end. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.cancel();
    await this.result.catch(() => {});
  }

  #finish(end: End): void {
    this.#end ??= end;
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
