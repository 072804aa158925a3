import { isPromiseLike } from "./_is_promise_like.ts";
import { RpcError } from "./rpc_error.ts";

/**
 * Writes encoded messages: one, or several gathered (whole messages, in order, never split);
 * a returned promise delays the next write until it settles.
 */
export type SendFn = (bytes: Uint8Array) => void | Promise<void>;

interface QueuedWrite {
  readonly bytes: Uint8Array;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/** Default of {@linkcode WriteQueueOptions.maxQueuedBytes}: 64 MiB. */
export const DEFAULT_MAX_QUEUED_WRITE_BYTES = 64 * 1024 * 1024;

/** Options of {@linkcode WriteQueue}. */
export interface WriteQueueOptions {
  /**
   * The most bytes that may wait for an earlier asynchronous `send` (the message being sent
   * is not counted; each waiting one counts its length plus
   * {@linkcode QUEUED_WRITE_OVERHEAD}). A write past it fails the queue: see
   * {@linkcode WriteQueue.write}.
   * @default {64 MiB}
   */
  readonly maxQueuedBytes?: number;
  /** Called once, when the queue fails because of the bound (before the writes reject). */
  readonly onBacklog?: (error: RpcError) => void;
  /**
   * Whether a write made while nothing is being sent waits for the end of the current tick
   * (a microtask), so that the messages of one tick go out gathered in one `send`: fewer
   * writes of the pipe when many callers are waiting. Every write then returns a promise.
   * @default {false}
   */
  readonly gatherTick?: boolean;
}

/**
 * What one queued message costs besides its bytes (its entry, promise and resolvers), counted
 * against the bound so that a flood of tiny answers cannot hide behind its small payloads.
 */
export const QUEUED_WRITE_OVERHEAD = 256;

/** The most bytes of queued messages gathered into one `send`. */
const GATHER_BYTES = 256 * 1024;

/** A queue whose consumed front is dropped once it is this long and at least half the array. */
const QUEUE_COMPACT_AT = 1024;

/**
 * Writes messages through a {@linkcode SendFn} in the order they were given, even when `send`
 * is asynchronous: while a write is pending, later messages wait in a queue. A synchronous
 * `send` costs no promise and no queue entry.
 *
 * The queue is bounded in bytes ({@linkcode WriteQueueOptions.maxQueuedBytes}): when the
 * other side stops reading, a write that would queue more fails the queue for good: every
 * queued message is dropped (its promise rejects with an `RPC_WRITE_BACKLOG`
 * {@linkcode RpcError}), `onBacklog` is told once, and every later write rejects with that
 * error at once.
 */
export class WriteQueue {
  readonly #send: SendFn;
  #writing = false;
  #queue: (QueuedWrite | undefined)[] = [];
  #queueHead = 0;
  #queuedBytes = 0;
  readonly #maxQueuedBytes: number;
  readonly #onBacklog: ((error: RpcError) => void) | undefined;
  readonly #gatherTick: boolean;
  #failed: RpcError | undefined;

  constructor(send: SendFn, options: WriteQueueOptions = {}) {
    this.#send = send;
    const max = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_WRITE_BYTES;
    if (!(max >= 0)) throw new RangeError(`maxQueuedBytes must be >= 0, got ${max}`);
    this.#maxQueuedBytes = max;
    this.#onBacklog = options.onBacklog;
    this.#gatherTick = options.gatherTick ?? false;
  }

  /** Bytes of the messages waiting in the queue, each with {@linkcode QUEUED_WRITE_OVERHEAD}. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** The `RPC_WRITE_BACKLOG` error once the queue failed, else `undefined`. */
  get failed(): RpcError | undefined {
    return this.#failed;
  }

  /** Messages waiting for an earlier asynchronous `send` to settle. */
  get size(): number {
    return this.#queue.length - this.#queueHead;
  }

  /**
   * Sends `bytes` after every earlier message. `undefined` means written synchronously;
   * otherwise the promise settles with this write (callers attach a rejection handler).
   */
  write(bytes: Uint8Array): Promise<void> | undefined {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    if (this.#writing) {
      const cost = bytes.length + QUEUED_WRITE_OVERHEAD;
      if (this.#queuedBytes + cost > this.#maxQueuedBytes) return this.#fail(cost);
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      this.#queue.push({ bytes, resolve, reject });
      this.#queuedBytes += cost;
      return promise;
    }
    if (this.#gatherTick) {
      // As if a send were pending until the end of the tick: the drain then gathers.
      this.#writing = true;
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      this.#queue.push({ bytes, resolve, reject });
      this.#queuedBytes += bytes.length + QUEUED_WRITE_OVERHEAD;
      queueMicrotask(this.#drain);
      return promise;
    }
    return this.#sendNow(bytes);
  }

  /** The bound was hit: drops the queue, rejects its writes and every later one. */
  #fail(more: number): Promise<void> {
    const error = new RpcError(
      "RPC_WRITE_BACKLOG",
      `the other side does not read what is written to it: ${this.size} messages ` +
        `(${this.#queuedBytes} bytes) are waiting and ${more} more would pass the bound of ` +
        `${this.#maxQueuedBytes} bytes; the queued messages were dropped and nothing more is sent`,
      {
        details: {
          queuedMessages: this.size,
          queuedBytes: this.#queuedBytes,
          maxQueuedBytes: this.#maxQueuedBytes,
        },
      },
    );
    this.#failed = error;
    const dropped = this.#queue;
    const head = this.#queueHead;
    this.#queue = [];
    this.#queueHead = 0;
    this.#queuedBytes = 0;
    try {
      this.#onBacklog?.(error);
    } catch {
      // The reporter's failure must not keep the queue alive.
    }
    for (let i = head; i < dropped.length; i++) dropped[i]!.reject(error);
    return Promise.reject(error);
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

  /**
   * Runs after an asynchronous send settled: sends queued messages until one is async. Messages
   * that queued up meanwhile go out gathered, several per `send` (up to {@link GATHER_BYTES}):
   * one write of the pipe instead of one per message.
   */
  readonly #drain = (): void => {
    this.#writing = false;
    const queue = this.#queue;
    while (this.#queueHead < queue.length) {
      const item = queue[this.#queueHead]!;
      queue[this.#queueHead++] = undefined;
      this.#queuedBytes -= item.bytes.length + QUEUED_WRITE_OVERHEAD;
      let bytes = item.bytes;
      let batch: QueuedWrite[] | undefined;
      if (this.#queueHead < queue.length && bytes.length < GATHER_BYTES) {
        let total = bytes.length;
        let end = this.#queueHead;
        while (end < queue.length && total + queue[end]!.bytes.length <= GATHER_BYTES) {
          total += queue[end++]!.bytes.length;
        }
        if (end > this.#queueHead) {
          batch = [item];
          bytes = new Uint8Array(total);
          bytes.set(item.bytes, 0);
          let off = item.bytes.length;
          for (; this.#queueHead < end; this.#queueHead++) {
            const next = queue[this.#queueHead]!;
            queue[this.#queueHead] = undefined;
            this.#queuedBytes -= next.bytes.length + QUEUED_WRITE_OVERHEAD;
            bytes.set(next.bytes, off);
            off += next.bytes.length;
            batch.push(next);
          }
        }
      }
      const written = this.#sendNow(bytes);
      if (written === undefined) {
        if (batch === undefined) item.resolve();
        else for (const b of batch) b.resolve();
        continue;
      }
      if (batch === undefined) written.then(item.resolve, item.reject);
      else {
        written.then(
          () => {
            for (const b of batch) b.resolve();
          },
          (error) => {
            for (const b of batch) b.reject(error);
          },
        );
      }
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
}
