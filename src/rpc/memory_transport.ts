import { JsonRpcPeer, type JsonRpcPeerOptions } from "./peer.ts";

/** Options of one side of a memory pair: everything but `send`, which the pair provides. */
export type MemoryPeerOptions = Omit<JsonRpcPeerOptions, "send">;

/** Options of {@linkcode createMemoryPair}. */
export interface MemoryPairOptions {
  /** Options of peer `a`. @default {{}} */
  readonly a?: MemoryPeerOptions;
  /** Options of peer `b`. @default {{}} */
  readonly b?: MemoryPeerOptions;
  /**
   * Deliver each message in pieces of at most this many bytes, to exercise the framing.
   * @default {whole messages}
   */
  readonly chunkBytes?: number;
  /**
   * Make `send` return a promise that settles once the bytes were delivered, to exercise the
   * peers' ordered asynchronous writes.
   * @default {false}
   */
  readonly asyncSend?: boolean;
}

/** Two connected peers; closing the pair closes both. */
export interface MemoryPair extends AsyncDisposable {
  /** One end (say, the host). */
  readonly a: JsonRpcPeer;
  /** The other end (say, the plugin). */
  readonly b: JsonRpcPeer;
  /** Closes both peers with `reason`. Idempotent. */
  close(reason?: unknown): void;
}

/** One direction: queues bytes and delivers them on a microtask, in order, never re-entrantly. */
class Pipe {
  target: JsonRpcPeer | undefined;
  #queue: Uint8Array[] = [];
  #scheduled = false;
  #waiters: (() => void)[] = [];

  constructor(readonly chunkBytes: number | undefined, readonly asyncSend: boolean) {}

  readonly send = (bytes: Uint8Array): void | Promise<void> => {
    this.#queue.push(bytes);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flush);
    }
    if (!this.asyncSend) return;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push(resolve);
    return promise;
  };

  readonly #flush = (): void => {
    this.#scheduled = false;
    const queue = this.#queue;
    const waiters = this.#waiters;
    this.#queue = [];
    this.#waiters = [];
    const target = this.target!;
    const step = this.chunkBytes;
    for (const bytes of queue) {
      if (step === undefined) {
        target.receive(bytes);
      } else {
        for (let i = 0; i < bytes.length; i += step) target.receive(bytes.subarray(i, i + step));
      }
    }
    for (const resolve of waiters) resolve();
  };
}

/**
 * Creates two {@linkcode JsonRpcPeer}s wired to each other in memory, like go-plugin's
 * in-memory transport: the full encode/frame/decode path without processes, for fast tests.
 * Bytes are delivered on a microtask, in order.
 *
 * @example
 * ```ts
 * await using pair = createMemoryPair({ b: { handlers: { echo: (p) => p } } });
 * console.log(await pair.a.request("echo", { hi: 1 })); // { hi: 1 }
 * ```
 */
export function createMemoryPair(options: MemoryPairOptions = {}): MemoryPair {
  const { chunkBytes, asyncSend = false } = options;
  if (chunkBytes !== undefined && !(Number.isSafeInteger(chunkBytes) && chunkBytes >= 1)) {
    throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
  }
  const toB = new Pipe(chunkBytes, asyncSend);
  const toA = new Pipe(chunkBytes, asyncSend);
  const a = new JsonRpcPeer({ ...options.a, send: toB.send });
  const b = new JsonRpcPeer({ ...options.b, send: toA.send });
  toB.target = b;
  toA.target = a;
  const close = (reason?: unknown): void => {
    a.close(reason);
    b.close(reason);
  };
  return {
    a,
    b,
    close,
    [Symbol.asyncDispose]: async () => {
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
    },
  };
}
