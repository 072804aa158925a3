import { getLogger } from "@logtape/logtape";
import { quote } from "./record_cap.ts";
import { PluginTimeoutError } from "./plugin_errors.ts";
import { StreamError } from "./stream_error.ts";

/** Chunks a stream may have in flight at most (the largest credit window). */
export const MAX_STREAM_WINDOW = 4096;
/**
 * The bytes of chunks (as JSON lines) the host holds for one stream at most, by default: each
 * chunk may be at most this much divided by the window (`max_chunk_bytes`).
 */
export const DEFAULT_STREAM_BUFFER_BYTES = 16 * 1024 * 1024;
/** The least `max_chunk_bytes` a stream may ask for (`maxBufferedBytes / window`). */
export const MIN_CHUNK_BYTES = 1024;
/** Ended streams whose late chunks (sent with credit before the cancel arrived) are expected. */
const ENDED_LIMIT = 1024;

/** The consumer of one stream on the host: what takes its chunks, in order. */
export interface ChunkSink {
  /**
   * How many chunks the host may hold for this stream: the credit the plugin gets at the start.
   * The sink grants more (with `open`'s `grant`) as its consumer reads.
   */
  readonly window: number;
  /**
   * The longest wait in ms for the plugin's next chunk (or its end) while it has credit; time
   * the consumer does not read is not counted. Default: no idle limit (the whole-stream
   * deadline still applies).
   */
  readonly idleTimeoutMs?: number;
  /**
   * The bytes of chunks the host may hold for this stream (chunk lines as JSON): each chunk may
   * be at most `floor(maxBufferedBytes / window)` bytes (and at most `max_line_bytes`), which
   * the plugin gets as `max_chunk_bytes`. Default: {@linkcode DEFAULT_STREAM_BUFFER_BYTES}.
   */
  readonly maxBufferedBytes?: number;
  /** Called once, when the request goes out: `grant(n)` gives the plugin `n` more chunks. */
  open(grant: (n: number) => void): void;
  /** One chunk, in order (`seq` 0, 1, ...). */
  push(data: unknown): void;
}

/** Options of one stream on a process (`PluginProcess.stream`). */
export interface StreamCallOptions {
  readonly signal?: AbortSignal;
  /** Deadline of the whole stream. */
  readonly timeoutMs: number;
  readonly sink: ChunkSink;
}

/** How {@linkcode PluginStreams.run} reaches the process. */
export interface StreamIo {
  /** Sends the request (the peer's `request`). */
  request(
    method: string,
    params: unknown,
    options: { signal: AbortSignal; timeoutMs: number; onId: (id: number) => void },
  ): Promise<unknown>;
  /** Maps the peer's errors to the runtime's call errors. */
  mapError(error: unknown): unknown;
  /** The request has this id (before it is written) / is done. */
  onId?(id: number): void;
  onEnd?(id: number): void;
}

class OpenStream {
  granted: number;
  received = 0;
  /** Lines the log gate let pass uncharged as its chunks (at most `granted`). */
  passed = 0;
  failure: StreamError | undefined;
  idle: ReturnType<typeof setTimeout> | undefined;
  constructor(
    readonly id: number,
    readonly method: string,
    readonly sink: ChunkSink,
    readonly controller: AbortController,
    readonly maxChunkBytes: number,
  ) {
    this.granted = sink.window;
  }
}

/**
 * The streams of one plugin process, on the host (README "Streaming"): credit-based flow
 * control. A stream starts with `$/stream {request, credit, max_chunk_bytes}` right before its
 * request; each `$/chunk {request, seq, data}` spends one credit; the sink grants more with
 * `$/credit {request, n}` as its consumer reads, so the host never holds more than the
 * window of chunks per stream, each at most `max_chunk_bytes` (`maxBufferedBytes / window`,
 * at most `max_line_bytes`). The response `{chunks, result}` ends it.
 *
 * A chunk without credit, out of order, or malformed for a stream in flight ends that stream
 * (`STREAM_PROTOCOL`, `$/cancel` to the plugin) and is logged; a chunk for a request that is no
 * stream is logged and dropped. The process keeps serving. A line the log gate let pass as a
 * chunk ({@linkcode PluginStreams.claimChunk}) that was none, or was longer than
 * `max_chunk_bytes`, ends its stream the same way. A stream whose deadline passes while the
 * plugin has no credit (its consumer did not read) fails with `STREAM_NOT_READ`, not
 * `PLUGIN_TIMEOUT`: the plugin was waiting, so it is not the plugin's failure.
 */
export class PluginStreams {
  readonly #plugin: string;
  readonly #notify: (method: string, params: unknown) => void;
  readonly #maxChunkBytes: number;
  readonly #open = new Map<number, OpenStream>();
  readonly #ended = new Set<number>();
  readonly #log;
  #unknownChunks = 0;
  /** The stream whose chunk the line being decoded claims to be, and whether it was. */
  #claim: OpenStream | undefined;
  #claimMet = false;
  /** Whether the plugin's SDK announced `features: ["stream"]` in `$/ready`. */
  enabled = false;
  /**
   * The length in bytes of the stdout line being decoded (the log gate's `lineBytes`): a chunk
   * over its stream's `max_chunk_bytes` is refused. Default: unknown (0, nothing refused).
   */
  lineBytes: () => number = () => 0;

  /**
   * @param plugin its name
   * @param notify sends a notification to the process
   * @param maxLineBytes the host's longest accepted line (the plugin keeps chunks below it)
   */
  constructor(
    plugin: string,
    notify: (method: string, params: unknown) => void,
    maxLineBytes: number,
  ) {
    this.#plugin = plugin;
    this.#notify = notify;
    this.#maxChunkBytes = maxLineBytes;
    this.#log = getLogger(["plugsconc", "plugin", plugin]);
  }

  /** Streams in flight. */
  get size(): number {
    return this.#open.size;
  }

  /**
   * A line begins like a `$/chunk` of request `id` (the log gate asks): if that stream has an
   * uncharged pass left (`granted - passed`), spends it and returns the stream's
   * `max_chunk_bytes`, the most the line may have; else 0 (the gate charges the line).
   */
  claimChunk(id: number): number {
    const s = this.#open.get(id);
    if (s === undefined || s.failure !== undefined || s.passed >= s.granted) return 0;
    s.passed++;
    this.#claim = s;
    this.#claimMet = false;
    return s.maxChunkBytes;
  }

  /**
   * The line {@linkcode PluginStreams.claimChunk} let pass reached the decoder: unless it was a
   * `$/chunk` of that stream (or it was `cut` at `max_chunk_bytes`), the stream fails.
   */
  settleChunk(id: number, cut: boolean): boolean {
    const s = this.#claim;
    const met = this.#claimMet;
    this.#claim = undefined;
    this.#claimMet = false;
    if (s === undefined || s.id !== id) return met;
    if (cut) {
      this.#fail(
        s,
        this.#violation(
          s,
          `it sent a $/chunk line longer than max_chunk_bytes (${s.maxChunkBytes} bytes); ` +
            "it was cut and not read",
        ),
      );
    } else if (!met) {
      this.#fail(
        s,
        this.#violation(
          s,
          "it sent a line that begins as its $/chunk but is none (not JSON, or it names " +
            "another request)",
        ),
      );
    }
    return met && !cut;
  }

  /**
   * Sends `method` as a stream and resolves with its final result once the response came and
   * every chunk went to the sink.
   *
   * @throws {StreamError} `STREAM_PROTOCOL`, `STREAM_IDLE`; the call's errors
   */
  async run(
    method: string,
    params: unknown,
    options: StreamCallOptions,
    io: StreamIo,
  ): Promise<unknown> {
    const { sink } = options;
    if (!Number.isInteger(sink.window) || sink.window < 1 || sink.window > MAX_STREAM_WINDOW) {
      throw new RangeError(
        `a stream's window must be a whole number from 1 to ${MAX_STREAM_WINDOW}, got ${sink.window}`,
      );
    }
    const buffer = sink.maxBufferedBytes ?? DEFAULT_STREAM_BUFFER_BYTES;
    const maxChunkBytes = Math.min(this.#maxChunkBytes, Math.floor(buffer / sink.window));
    if (!Number.isSafeInteger(buffer) || maxChunkBytes < MIN_CHUNK_BYTES) {
      throw new RangeError(
        `a stream's maxBufferedBytes must be a whole number of at least ${MIN_CHUNK_BYTES} ` +
          `bytes per chunk of its window (${sink.window}), got ${buffer}`,
      );
    }
    const controller = new AbortController();
    const signal = options.signal
      ? AbortSignal.any([options.signal, controller.signal])
      : controller.signal;
    let s: OpenStream | undefined;
    try {
      const value = await io.request(method, params, {
        signal,
        timeoutMs: options.timeoutMs,
        onId: (id) => {
          s = new OpenStream(id, method, sink, controller, maxChunkBytes);
          this.#open.set(id, s);
          this.#notify("$/stream", {
            request: id,
            credit: sink.window,
            max_chunk_bytes: maxChunkBytes,
          });
          io.onId?.(id);
          sink.open((n) => this.#grant(s!, n));
          this.#arm(s);
        },
      });
      if (s?.failure) throw s.failure;
      const end = value as { chunks?: unknown; result?: unknown } | null;
      if (end === null || typeof end !== "object" || typeof end.chunks !== "number") {
        this.#fail(
          s!,
          this.#violation(s!, "its response does not end a stream ({chunks, result})"),
        );
      } else if (end.chunks !== s!.received) {
        this.#fail(
          s!,
          this.#violation(
            s!,
            `its response says ${quote(end.chunks)} chunks, the host received ${s!.received}`,
          ),
        );
      }
      if (s!.failure) throw s!.failure;
      return end!.result ?? null;
    } catch (e) {
      if (s?.failure) throw s.failure;
      const error = io.mapError(e);
      // Its deadline passed while the plugin had no credit: it was waiting for the consumer.
      if (s !== undefined && s.received >= s.granted && error instanceof PluginTimeoutError) {
        throw this.#notRead(s, options.timeoutMs, error);
      }
      throw error;
    } finally {
      if (s !== undefined) {
        clearTimeout(s.idle);
        this.#open.delete(s.id);
        this.#ended.add(s.id);
        if (this.#ended.size > ENDED_LIMIT) this.#ended.delete(this.#ended.values().next().value!);
        io.onEnd?.(s.id);
      }
    }
  }

  /** Takes a `$/chunk` notification. */
  onChunk(params: unknown): void {
    const p = params as { request?: unknown; seq?: unknown; data?: unknown } | null | undefined;
    const id = p?.request;
    if (this.#claim !== undefined && id === this.#claim.id) this.#claimMet = true;
    const s = typeof id === "number" ? this.#open.get(id) : undefined;
    if (s === undefined) {
      if (typeof id === "number" && this.#ended.has(id)) return; // crossed the cancel
      this.#unknownChunks++;
      // Bounded by the plugin's log budget (the gate charges such lines), and thinned here.
      if (this.#unknownChunks <= 10 || this.#unknownChunks % 1000 === 0) {
        this.#log.warning(
          "plugin {plugin} sent a $/chunk for request {request}, which is no stream in flight; " +
            "dropped ({count} so far)",
          { plugin: this.#plugin, request: quote(id), count: this.#unknownChunks },
        );
      }
      return;
    }
    if (s.failure !== undefined) return;
    if (!("data" in (p as object)) || p?.seq !== s.received) {
      this.#fail(
        s,
        this.#violation(
          s,
          "data" in (p as object)
            ? `it sent chunk ${quote(p?.seq)} where chunk ${s.received} was due`
            : `it sent a $/chunk without data`,
        ),
      );
      return;
    }
    if (s.received >= s.granted) {
      this.#fail(
        s,
        this.#violation(
          s,
          `it sent chunk ${s.received} without credit (the host granted ${s.granted})`,
        ),
      );
      return;
    }
    const bytes = this.lineBytes();
    if (bytes > s.maxChunkBytes) {
      // A line the gate did not pass as a chunk (another key order): it was charged, not cut.
      this.#fail(
        s,
        this.#violation(
          s,
          `it sent chunk ${s.received} in a line of ${bytes} bytes, over max_chunk_bytes ` +
            `(${s.maxChunkBytes} bytes)`,
        ),
      );
      return;
    }
    // What a held chunk takes in memory, not only on the wire: `[{},{},...]` is 3 bytes per
    // object as JSON and some 20 times that parsed, so the bytes bound alone would let a
    // stream's unread chunks take 20 times `maxBufferedBytes`.
    const parsed = bytes + HELD_BYTES_PER_CONTAINER * containers(p!.data, s.maxChunkBytes);
    if (parsed > HELD_EXPANSION * s.maxChunkBytes) {
      this.#fail(
        s,
        this.#violation(
          s,
          `its chunk ${s.received} holds so many objects and arrays that it would take some ` +
            `${parsed} bytes in memory, over ${HELD_EXPANSION} x max_chunk_bytes ` +
            `(${s.maxChunkBytes} bytes); send fewer, larger values per chunk`,
        ),
      );
      return;
    }
    s.received++;
    this.#arm(s);
    s.sink.push(p!.data);
  }

  #grant(s: OpenStream, n: number): void {
    if (this.#open.get(s.id) !== s || s.failure !== undefined || !(n > 0)) return;
    s.granted += n;
    this.#notify("$/credit", { request: s.id, n });
    this.#arm(s);
  }

  /** The idle timer runs while the plugin has credit (the consumer waits for it). */
  #arm(s: OpenStream): void {
    clearTimeout(s.idle);
    s.idle = undefined;
    const ms = s.sink.idleTimeoutMs;
    if (ms === undefined || s.received >= s.granted || s.failure !== undefined) return;
    s.idle = setTimeout(() => {
      this.#fail(
        s,
        new StreamError(
          "STREAM_IDLE",
          this.#plugin,
          s.method,
          `${this.#plugin}.${s.method} sent no chunk for ${ms} ms while it had credit ` +
            "(idleTimeoutMs); the stream was cancelled",
          { details: { request: s.id, idleTimeoutMs: ms } },
        ),
      );
    }, ms);
  }

  #notRead(s: OpenStream, timeoutMs: number, cause: unknown): StreamError {
    return new StreamError(
      "STREAM_NOT_READ",
      this.#plugin,
      s.method,
      `the stream of ${this.#plugin}.${s.method} (request ${s.id}) reached its deadline ` +
        `(${timeoutMs} ms) while the plugin waited for credit: the consumer did not read the ` +
        `chunks the host held (window ${s.sink.window}); read the stream as it comes, or give ` +
        "it a longer timeoutMs. The plugin was cancelled; this does not count against it",
      { cause, details: { request: s.id, timeoutMs, received: s.received } },
    );
  }

  #violation(s: OpenStream, reason: string): StreamError {
    return new StreamError(
      "STREAM_PROTOCOL",
      this.#plugin,
      s.method,
      `plugin ${this.#plugin} broke the streaming protocol in ${s.method} (request ${s.id}): ` +
        `${reason}; the stream was ended, the plugin keeps serving`,
      { details: { request: s.id } },
    );
  }

  /** Ends a stream in flight: logged, and the plugin gets `$/cancel`. */
  #fail(s: OpenStream, error: StreamError): void {
    if (s.failure !== undefined) return;
    s.failure = error;
    clearTimeout(s.idle);
    if (error.code === "STREAM_PROTOCOL") {
      this.#log.warning("{message}", { plugin: this.#plugin, message: error.message });
    }
    s.controller.abort(error);
  }
}

/** What the host counts one parsed object or array to take in memory, beyond its JSON. */
const HELD_BYTES_PER_CONTAINER = 48;
/** How many times its `max_chunk_bytes` a held chunk may take in memory (see `containers`). */
const HELD_EXPANSION = 4;

/**
 * The objects and arrays in `data`, counted up to the most a chunk of `maxBytes` may hold
 * (iteratively: a chunk may nest deeper than the stack).
 */
function containers(data: unknown, maxBytes: number): number {
  const limit = Math.ceil((HELD_EXPANSION * maxBytes) / HELD_BYTES_PER_CONTAINER) + 1;
  if (data === null || typeof data !== "object") return 0;
  const todo: object[] = [data];
  let n = 0;
  while (todo.length > 0 && n < limit) {
    const v = todo.pop()!;
    n++;
    for (const x of Object.values(v)) if (x !== null && typeof x === "object") todo.push(x);
  }
  return n;
}
