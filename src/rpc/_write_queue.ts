import { isPromiseLike } from "./_is_promise_like.ts";

/** Writes one encoded message; a returned promise delays the next write until it settles. */
export type SendFn = (bytes: Uint8Array) => void | Promise<void>;

interface QueuedWrite {
  readonly bytes: Uint8Array;
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
}

/** A queue whose consumed front is dropped once it is this long and at least half the array. */
const QUEUE_COMPACT_AT = 1024;

/**
 * Writes messages through a {@linkcode SendFn} in the order they were given, even when `send`
 * is asynchronous: while a write is pending, later messages wait in a queue. A synchronous
 * `send` costs no promise and no queue entry.
 */
export class WriteQueue {
  readonly #send: SendFn;
  #writing = false;
  #queue: (QueuedWrite | undefined)[] = [];
  #queueHead = 0;

  constructor(send: SendFn) {
    this.#send = send;
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
}
