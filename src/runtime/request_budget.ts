import type { JsonRpcPeer } from "../rpc/mod.ts";
import type { LogBudgetClock } from "./log_budget.ts";

/** Options of {@link RequestBudget}. */
export interface RequestBudgetOptions {
  /** Bytes per second of request lines parsed outside the log budget, averaged. Default 8 MiB. */
  readonly bytesPerS?: number;
  /** Refused requests answered per second, averaged (more are dropped unanswered). Default 1000. */
  readonly answersPerS?: number;
  /** A burst may spend this many seconds' worth of both at once. Default 2. */
  readonly burstSeconds?: number;
  /** Default: `performance.now()` (the timers are not used). */
  readonly clock?: Pick<LogBudgetClock, "now">;
}

/** Counters of a {@link RequestBudget}, since it was made. */
export interface RequestBudgetStats {
  /** Request lines charged to it. */
  readonly passed: number;
  /** Their bytes. */
  readonly passedBytes: number;
  /** Request lines refused unparsed (both budgets spent), answered or not. */
  readonly refused: number;
  /** Of those, the ones answered with an error. */
  readonly answered: number;
}

/**
 * How much a plugin's own requests to host services (`host/process.*`, `host/plugins.call`)
 * may cost the host to read, apart from its {@link LogBudget}: the log gate charges each line
 * in the SDK's request form (up to 64 KiB of it) here, and lets it pass while the bucket is not
 * in debt, so a plugin over its log budget can still call the host. Past it, request lines are
 * charged to the log budget like other lines; when both are spent a request is refused
 * unparsed and answered with an error (`PLUGIN_REQUEST_BUDGET`), at most `answersPerS` of them.
 * One budget is shared by all instances and restarts of the plugin (its log budget's).
 */
export class RequestBudget {
  readonly bytesPerS: number;
  readonly #bytesPerMs: number;
  readonly #maxBytes: number;
  readonly #answersPerMs: number;
  readonly #maxAnswers: number;
  readonly #clock: Pick<LogBudgetClock, "now">;
  #bytes: number;
  #answers: number;
  #at: number;
  #passed = 0;
  #passedBytes = 0;
  #refused = 0;
  #answered = 0;

  /** @throws {RangeError} for a rate or burst that is not a positive number */
  constructor(options: RequestBudgetOptions = {}) {
    this.bytesPerS = positive("bytesPerS", options.bytesPerS ?? 8 * 1024 * 1024);
    const answersPerS = positive("answersPerS", options.answersPerS ?? 1000);
    const burst = positive("burstSeconds", options.burstSeconds ?? 2);
    this.#bytesPerMs = this.bytesPerS / 1000;
    this.#maxBytes = this.bytesPerS * burst;
    this.#answersPerMs = answersPerS / 1000;
    this.#maxAnswers = Math.max(1, answersPerS * burst);
    this.#bytes = this.#maxBytes;
    this.#answers = this.#maxAnswers;
    this.#clock = options.clock ?? { now: () => performance.now() };
    this.#at = this.#clock.now();
  }

  /** What it let through and refused so far. */
  get stats(): RequestBudgetStats {
    return {
      passed: this.#passed,
      passedBytes: this.#passedBytes,
      refused: this.#refused,
      answered: this.#answered,
    };
  }

  /** Whether a request line may pass on this budget now (it is not in debt). */
  ready(): boolean {
    this.#refill();
    return this.#bytes > 0;
  }

  /** Charges a request line that passed; may go into debt (at most a minute's worth). */
  spend(bytes: number): void {
    this.#bytes = Math.max(-this.#bytesPerMs * 60_000, this.#bytes - bytes);
    this.#passed++;
    this.#passedBytes += bytes;
  }

  /** Counts a refused request line; whether it may be answered (an answer token was left). */
  refuse(): boolean {
    this.#refill();
    this.#refused++;
    if (this.#answers < 1) return false;
    this.#answers -= 1;
    this.#answered++;
    return true;
  }

  #refill(): void {
    const now = this.#clock.now();
    const elapsed = now - this.#at;
    if (elapsed <= 0) return;
    this.#at = now;
    this.#bytes = Math.min(this.#maxBytes, this.#bytes + elapsed * this.#bytesPerMs);
    this.#answers = Math.min(this.#maxAnswers, this.#answers + elapsed * this.#answersPerMs);
  }
}

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) {
    throw new RangeError(`${name} must be a number > 0, got ${value}`);
  }
  return value;
}

/** The JSON-RPC error code of a request refused unread (a server error of the host's). */
export const REQUEST_BUDGET_RPC_CODE = -32001;

/**
 * Answers the plugin's request `id`, which the log gate dropped unread, with an error that says
 * why, unless the budget's answers are spent too (a plugin writing refused requests in a loop
 * gets at most `answersPerS` answers a second; the rest are dropped unanswered).
 */
export function refuseRequest(
  peer: Pick<JsonRpcPeer, "respondError">,
  plugin: string,
  budget: { readonly requests: RequestBudget },
  id: number,
): void {
  if (!budget.requests.refuse()) return;
  const bytesPerS = budget.requests.bytesPerS;
  peer.respondError(
    id,
    REQUEST_BUDGET_RPC_CODE,
    `plugin ${plugin}: request refused unread: the plugin's request budget (${bytesPerS} bytes/s) ` +
      `and its log budget are both spent; retry later`,
    { code: "PLUGIN_REQUEST_BUDGET", details: { plugin, bytesPerS } },
  );
}
