/** The types of the log gate (`log_gate.ts`): what it asks, and its states. @module */

/** What the gate asks about a line start in the SDK's forms (without them, none passes free). */
export interface LogGateClaims {
  /** Whether the host waits for the response with this id (the peer's `isPending`). */
  readonly isPending?: (id: number) => boolean;
  /**
   * A line begins like a `$/chunk` of the stream with request `id`: may it pass uncharged?
   * Returns the most bytes the line may have (its newline included), or 0 when no chunk of
   * that stream is due. A nonzero answer spends one of the stream's uncharged passes
   * (`credit granted - lines already passed`), whatever the line turns out to be.
   */
  readonly claimChunk?: (id: number) => number;
  /**
   * The line `claimChunk` let pass has reached the decoder, which parsed it: whole, or `cut` at
   * its limit (the decoder got a line that is not JSON). Returns whether it was that stream's
   * chunk; a line that was not is charged to the byte budget.
   */
  readonly settleChunk?: (id: number, cut: boolean) => boolean;
  /**
   * A line begins like a request of the plugin's with this `id` (the SDK's form, `"method"` or
   * anything but `"result"`/`"error"` after the id): may it pass uncharged? Yes while the host
   * serves fewer than its bound of the plugin's requests and none with this id (the peer's
   * `inFlightCount` and `isServing`). Without it, no request passes uncharged.
   */
  readonly claimRequest?: (id: number) => boolean;
  /**
   * The line `claimRequest` let pass has reached the decoder, which parsed it (and started its
   * handler): is the host now serving a request with this id? A line that is not (not a
   * request, or one answered at once, such as an unknown method) is charged to the byte budget.
   */
  readonly settleRequest?: (id: number) => boolean;
}

/** What the gate does with the rest of the current line. */
export type Mode =
  /** At a line start, classifying it (the bytes read so far are held back). */
  | "scan"
  /** Forwarding it, uncharged (a response the host waits for, or a `$/log` line the budget takes). */
  | "pass"
  /**
   * Forwarding it and counting its bytes, charged to the byte budget when it ends (unless it
   * ends within `#free` bytes); cut past `#allowance`.
   */
  | "charge"
  /** Dropping it (the budget refused it), counting its bytes. */
  | "drop";

/** What a line start was classified as. */
export type Kind =
  /** `$/log` in the SDK's form. */
  | "log"
  /** In the id form, with a numeric id and `result` or `error` next. */
  | "response"
  /**
   * In the id form, with a numeric id but no `result` or `error` next (a request), that
   * `claimRequest` let pass uncharged (up to 64 KiB).
   */
  | "request"
  /** Anything else. */
  | "other";

/** Where the classification of a line start is. */
export type Phase =
  /** Comparing with the prefixes. */
  | "prefix"
  /** After the chunk prefix, its id and comma: a `$/chunk` line of that stream. */
  | "chunk"
  /** After the id prefix: reading the id (`-?` and digits) up to its comma. */
  | "id"
  /** After the id's comma: comparing with `"result":` and `"error":`. */
  | "key";
