import type { LogBudget } from "./log_budget.ts";

const LF = 0x0a;
/** How the SDK begins every `$/log` line (`JSON.stringify` keeps the key order it was given). */
const PREFIX = new TextEncoder().encode('{"jsonrpc":"2.0","method":"$/log","params":');

/**
 * Sits between a plugin's stdout and the JSON-RPC decoder and drops whole `$/log` lines while
 * the plugin's {@link LogBudget} would refuse them, before they are decoded and parsed: a
 * plugin sending megabyte records over its budget then costs the host a scan for the next
 * newline instead of a string and an object per record (and the GC the time to free them).
 * Only lines that begin exactly as the SDK writes them are looked at; anything else (replies,
 * requests, other key orders) passes untouched and is budgeted after parsing as before. The
 * bytes it forwards are views of the chunk it got; nothing is copied.
 */
export class LogGate {
  readonly #budget: LogBudget;
  readonly #forward: (bytes: Uint8Array) => void;
  /** At a line start: how many bytes of the prefix matched so far (held, not forwarded yet). */
  #matched = 0;
  /** `scan` at a line start, `pass` inside a forwarded line, `drop` inside a dropped one. */
  #mode: "scan" | "pass" | "drop" = "scan";
  #droppedLine = 0;
  #droppedLines = 0;

  /** @param forward receives the bytes that pass (the decoder's `receive`) */
  constructor(budget: LogBudget, forward: (bytes: Uint8Array) => void) {
    this.#budget = budget;
    this.#forward = forward;
  }

  /** `$/log` lines dropped here so far. */
  get droppedLines(): number {
    return this.#droppedLines;
  }

  /** Feeds a chunk of stdout; forwards what passes, synchronously. */
  push(chunk: Uint8Array): void {
    const end = chunk.length;
    let pos = 0;
    let from = 0; // start of the region to forward
    while (pos < end) {
      if (this.#mode !== "scan") {
        const lf = chunk.indexOf(LF, pos);
        const stop = lf < 0 ? end : lf + 1;
        if (this.#mode === "drop") {
          this.#droppedLine += stop - pos;
          if (lf >= 0) this.#endDrop();
          from = stop;
        }
        pos = stop;
        if (lf >= 0) this.#mode = "scan";
        continue;
      }
      // At a line start: compare with the prefix, holding the matched bytes back.
      if (this.#matched === 0 && pos > from) {
        this.#forward(chunk.subarray(from, pos));
        from = pos;
      }
      while (pos < end && this.#matched < PREFIX.length && chunk[pos] === PREFIX[this.#matched]) {
        pos++;
        this.#matched++;
      }
      if (pos === end && this.#matched < PREFIX.length) break; // the rest comes with the next chunk
      const held = this.#matched;
      this.#matched = 0;
      if (held === PREFIX.length && !this.#budget.ready()) {
        this.#mode = "drop";
        this.#droppedLine = held;
        from = pos;
        continue;
      }
      // Not a $/log line, or one the budget takes: forward what was held and go on.
      if (held > pos - from) {
        // Part of the prefix came with earlier chunks: forward it from the constant.
        this.#forward(PREFIX.subarray(0, held - (pos - from)));
      }
      this.#mode = "pass";
    }
    // What is left since `from` is passed bytes, unless it is a held prefix or dropped.
    if (this.#mode !== "drop" && this.#matched === 0 && from < end) {
      this.#forward(chunk.subarray(from, end));
    }
  }

  #endDrop(): void {
    this.#droppedLines++;
    this.#budget.drop(this.#droppedLine);
    this.#droppedLine = 0;
  }
}
