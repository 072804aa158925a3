/** The types of the log gate (`log_gate.ts`): what it asks, and its states. @module */
import type { RequestBudget } from "./request_budget.ts";

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
   * The plugin's request budget: a line in the SDK's request form (`{"jsonrpc":"2.0","id":<n>,`
   * then anything but `"result"`/`"error"`) passes while it is ready, and up to 64 KiB of it is
   * charged to it. Without it, such lines are handled like any other line.
   */
  readonly requests?: RequestBudget;
  /**
   * A line in the request form with this id was dropped unparsed (the request budget and the
   * log budget were both spent): answer it with an error, if the request budget's `refuse` says
   * so. Default: nothing is answered.
   */
  readonly refuseRequest?: (id: number) => void;
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
   * In the id form, with a numeric id but no `result` or `error` next (a request), passing on
   * the request budget (up to 64 KiB).
   */
  | "request"
  /** In the request form, but both the request budget and the log budget are spent: dropped. */
  | "refused"
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
