import { preview, quoteId } from "./_error_text.ts";
import { isId } from "./_is_id.ts";
import { abortError } from "./_peer_errors.ts";
import { RpcError, RpcRemoteError } from "./rpc_error.ts";

/** Late responses of cancelled requests are expected; remember this many cancelled ids. */
const ABANDONED_LIMIT = 1024;

/** A request of ours waiting for its response. Doubles as the abort listener of its signal. */
export class PendingRequest {
  /** `performance.now()` by which it must be answered; `Infinity` without a timeout. */
  deadline = Infinity;
  signal: AbortSignal | undefined = undefined;

  constructor(
    readonly id: number,
    readonly method: string,
    readonly timeoutMs: number | undefined,
    readonly resolve: (value: unknown) => void,
    readonly reject: (reason: unknown) => void,
    readonly table: PendingRequests,
  ) {}

  handleEvent(): void {
    this.table.abort(this);
  }
}

/**
 * Our requests waiting for their responses, by id (a `Map`, so a lookup is the `Map`'s own):
 * one timer for all their deadlines, their settling by a response, abort, timeout or close,
 * and the ids of requests given up on, whose late responses are expected.
 */
export class PendingRequests extends Map<number, PendingRequest> {
  readonly #cancel: (id: number) => void;
  readonly #report: (error: RpcError) => void;
  readonly #abandoned = new Set<number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  /** Pending requests with a deadline; at 0 the timer is cleared (nothing keeps it). */
  #timed = 0;
  #closed = false;

  /**
   * @param cancel tells the other side to stop serving a request given up on (`$/cancel`)
   * @param report receives malformed and unexpected responses
   */
  constructor(cancel: (id: number) => void, report: (error: RpcError) => void) {
    super();
    this.#cancel = cancel;
    this.#report = report;
  }

  /** Gives `entry`, already in the table, a deadline `timeoutMs` from now. */
  expireAfter(entry: PendingRequest, timeoutMs: number): void {
    entry.deadline = performance.now() + timeoutMs;
    this.#timed++;
    // One timer for all requests, armed for the earliest deadline: a timer per request
    // costs more than the rest of a request at 50,000 calls/s.
    if (this.#timer === undefined || entry.deadline < this.#timerAt) this.#arm(entry.deadline);
  }

  /** Removes `entry` and clears its timer and listener, exactly once: false if it was gone. */
  take(entry: PendingRequest): boolean {
    if (this.get(entry.id) !== entry) return false;
    this.delete(entry.id);
    entry.signal?.removeEventListener("abort", entry);
    if (entry.deadline !== Infinity && --this.#timed === 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    return true;
  }

  /** Settles the request a response (an object with `result` or `error`) names. */
  settle(m: Record<string, unknown>, line: string): void {
    const { id, error } = m;
    const entry = typeof id === "number" ? this.get(id) : undefined;
    let problem: string | undefined;
    if (m.jsonrpc !== "2.0") problem = `"jsonrpc" must be "2.0"`;
    else if ("result" in m && "error" in m) problem = `it has both "result" and "error"`;
    else if (id !== null && !isId(id)) problem = `"id" must be a string, a number or null`;
    else if ("error" in m && !isErrorObject(error)) {
      problem = `"error" must be an object with an integer "code" and a string "message"`;
    }
    if (problem !== undefined) {
      const err = new RpcError("RPC_INVALID_MESSAGE", `received an invalid response: ${problem}`, {
        details: { id: typeof id === "string" ? quoteId(id) : id, preview: preview(line) },
      });
      this.#report(err);
      // The caller would otherwise wait for a response that will never be valid.
      if (entry !== undefined && this.take(entry)) entry.reject(err);
      return;
    }
    if (entry === undefined) {
      if (id === null && "error" in m) {
        // The other side could not make sense of something we sent.
        const { code, message, data } = error as { code: number; message: string; data?: unknown };
        this.#report(new RpcRemoteError(code, message, { data, id: null }));
        return;
      }
      if (typeof id === "number" && this.#abandoned.delete(id)) return;
      this.#report(
        new RpcError(
          "RPC_UNKNOWN_ID",
          `received a response for id ${
            quoteId(id)
          }, which matches no pending request; it was ignored`,
          { details: { id } },
        ),
      );
      return;
    }
    this.take(entry);
    if ("error" in m) {
      const { code, message, data } = error as { code: number; message: string; data?: unknown };
      entry.reject(new RpcRemoteError(code, message, { method: entry.method, id: entry.id, data }));
    } else {
      entry.resolve(m.result);
    }
  }

  /** Gives up on `entry` because its signal aborted (it is the signal's listener). */
  abort(entry: PendingRequest): void {
    if (!this.take(entry)) return;
    this.#abandon(entry.id);
    entry.reject(abortError(entry.method, entry.id, entry.signal?.reason));
  }

  /** Rejects every pending request with `RPC_CLOSED` (cause: `reason`) and stops the timer. */
  close(reason: unknown): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const pending = [...this.values()];
    for (const entry of pending) {
      this.take(entry);
      entry.reject(
        new RpcError(
          "RPC_CLOSED",
          `the connection closed before request "${entry.method}" (id ${entry.id}) was answered`,
          { cause: reason, details: { id: entry.id, method: entry.method } },
        ),
      );
    }
    this.#abandoned.clear();
  }

  #arm(at: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(this.#sweep, Math.max(0, Math.ceil(at - performance.now())));
  }

  /** Times out every request past its deadline, then re-arms for the earliest one left. */
  readonly #sweep = (): void => {
    this.#timer = undefined;
    // Timers may fire a fraction of a millisecond early against performance.now().
    const now = performance.now() + 1;
    let next = Infinity;
    const expired: PendingRequest[] = [];
    for (const entry of this.values()) {
      if (entry.deadline <= now) expired.push(entry);
      else if (entry.deadline < next) next = entry.deadline;
    }
    for (const entry of expired) this.#expire(entry);
    if (next !== Infinity && !this.#closed) this.#arm(next);
  };

  #expire(entry: PendingRequest): void {
    if (!this.take(entry)) return;
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
  }

  /** Remembers the id so its late response is not an error, and tells the other side to stop. */
  #abandon(id: number): void {
    this.#abandoned.add(id);
    if (this.#abandoned.size > ABANDONED_LIMIT) {
      this.#abandoned.delete(this.#abandoned.values().next().value!);
    }
    this.#cancel(id);
  }
}

function isErrorObject(value: unknown): boolean {
  if (typeof value !== "object" || value === null) return false;
  const { code, message } = value as { code?: unknown; message?: unknown };
  return Number.isSafeInteger(code) && typeof message === "string";
}
