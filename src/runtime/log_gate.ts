import type { LogBudget } from "./log_budget.ts";

const LF = 0x0a;
const encoder = new TextEncoder();
/**
 * How the SDK begins every response and every request it writes (`JSON.stringify` keeps the
 * key order it was given: `{ jsonrpc, id, result | error }`, `{ jsonrpc, id, method, params }`).
 */
const ID_PREFIX = encoder.encode('{"jsonrpc":"2.0","id":');
/** How the SDK begins every `$/log` line. */
const LOG_PREFIX = encoder.encode('{"jsonrpc":"2.0","method":"$/log","params":');
const PREFIXES = [LOG_PREFIX, ID_PREFIX];
/** The least a line not in the SDK's forms may have before it is cut, whatever the budget holds. */
const MIN_ALLOWANCE = 64 * 1024;
/** Ends a line cut short, so that the decoder sees (and reports) a line that is not JSON. */
const NEWLINE = Uint8Array.of(LF);

/** What the gate does with the rest of the current line. */
type Mode =
  /** At a line start, comparing it with the prefixes (the matched bytes are held back). */
  | "scan"
  /** Forwarding it, uncharged (an SDK response or request, or a `$/log` line the budget takes). */
  | "pass"
  /** Forwarding it and counting its bytes, charged to the byte budget when it ends. */
  | "charge"
  /** Dropping it (the budget refused it), counting its bytes. */
  | "drop";

/**
 * Sits between a plugin's stdout and the JSON-RPC decoder, and keeps what a plugin writes
 * there from costing the host more than its {@link LogBudget} allows, before any line is
 * decoded or parsed. Each line is classified by how it begins:
 *
 * - `{"jsonrpc":"2.0","id":` (how the SDK writes every response and request): passes,
 *   uncharged. What the host does with it is bounded elsewhere (line length, write queue).
 * - `{"jsonrpc":"2.0","method":"$/log","params":` (the SDK's `$/log`): passes while the budget
 *   takes records (the record is budgeted after parsing), else is dropped whole.
 * - anything else (other notifications such as `$/ready`, other key orders, garbage, empty
 *   lines): while the budget is ready it passes and its byte length is charged to the byte
 *   budget when it ends; otherwise it is dropped unparsed (and counted as a dropped record).
 *   Such a line may be at most as long as the byte budget holds when it starts (at least
 *   64 KiB; the budget holds at most its burst, 2 s of `bytes_per_s`): past that it is cut, a
 *   newline ends what was forwarded (the decoder reports it as not JSON) and the rest is
 *   dropped. The stream's first line always passes whole (charged), so that `$/ready` gets
 *   through even when a restarted plugin finds its shared budget spent.
 *
 * So a plugin that does not use the SDK's encoding loses its other lines, its responses and
 * requests too, while it is over its log budget, and its lines longer than what is left of it. A plugin sending megabyte lines over its
 * budget costs the host a scan for the next newline instead of a string and an object per
 * line (and the GC the time to free them). The bytes it forwards are views of the chunk it
 * got; nothing is copied.
 */
export class LogGate {
  readonly #budget: LogBudget;
  readonly #forward: (bytes: Uint8Array) => void;
  /** At a line start: how many bytes of `#prefix` matched so far (held, not forwarded yet). */
  #matched = 0;
  #prefix: Uint8Array = LOG_PREFIX;
  #mode: Mode = "scan";
  /** Bytes of the current line counted so far (`charge` and `drop`). */
  #lineBytes = 0;
  /** How many bytes the current `charge` line may have before it is cut. */
  #allowance = Infinity;
  #firstLine = true;
  #cutLines = 0;
  #droppedLines = 0;
  #droppedOtherLines = 0;
  #chargedLines = 0;

  /** @param forward receives the bytes that pass (the decoder's `receive`) */
  constructor(budget: LogBudget, forward: (bytes: Uint8Array) => void) {
    this.#budget = budget;
    this.#forward = forward;
  }

  /** Lines dropped here so far, `$/log` and other. */
  get droppedLines(): number {
    return this.#droppedLines;
  }

  /** Lines dropped here so far that were not SDK `$/log` lines. */
  get droppedOtherLines(): number {
    return this.#droppedOtherLines;
  }

  /** Lines not in the SDK's forms cut short because they were longer than the budget held. */
  get cutLines(): number {
    return this.#cutLines;
  }

  /** Lines let through and charged to the byte budget so far (finished lines). */
  get chargedLines(): number {
    return this.#chargedLines;
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
        if (this.#mode === "charge" && this.#lineBytes + (stop - pos) > this.#allowance) {
          // Too long for what the budget held: forward up to the allowance, end it, drop the rest.
          const keep = Math.max(0, this.#allowance - this.#lineBytes);
          this.#forward(chunk.subarray(from, pos + keep));
          this.#forward(NEWLINE);
          this.#budget.spend(this.#allowance);
          this.#cutLines++;
          this.#droppedOtherLines++;
          this.#mode = "drop";
          this.#lineBytes = this.#allowance;
          pos += keep;
          from = pos;
          continue;
        }
        if (this.#mode !== "pass") this.#lineBytes += stop - pos;
        if (this.#mode === "drop") from = stop;
        pos = stop;
        if (lf >= 0) this.#endLine();
        continue;
      }
      // At a line start: compare with the prefixes, holding the matched bytes back.
      if (this.#matched === 0 && pos > from) {
        this.#forward(chunk.subarray(from, pos));
        from = pos;
      }
      while (pos < end && this.#matched < this.#prefix.length) {
        const byte = chunk[pos]!;
        if (this.#prefix[this.#matched] !== byte && !this.#switchPrefix(byte)) break;
        pos++;
        this.#matched++;
      }
      if (pos === end && this.#matched < this.#prefix.length) break; // the rest comes later
      const held = this.#matched;
      const prefix = this.#prefix;
      this.#matched = 0;
      this.#prefix = LOG_PREFIX;
      const whole = held === prefix.length;
      const first = this.#firstLine;
      this.#firstLine = false;
      this.#allowance = Infinity;
      if (whole && prefix === ID_PREFIX) this.#mode = "pass";
      else if (first || this.#budget.ready()) {
        this.#mode = whole ? "pass" : "charge";
        if (!whole && !first) {
          this.#allowance = Math.max(MIN_ALLOWANCE, this.#budget.availableBytes());
        }
      } else {
        // A `$/log` line that passes is budgeted after parsing; any other is charged here.
        if (!whole) this.#droppedOtherLines++;
        this.#mode = "drop";
      }
      this.#lineBytes = held;
      if (this.#mode === "drop") {
        from = pos;
        continue;
      }
      if (held > pos - from) {
        // Part of the prefix came with earlier chunks: forward it from the constant.
        this.#forward(prefix.subarray(0, held - (pos - from)));
      }
    }
    // What is left since `from` is passed bytes, unless it is a held prefix or dropped.
    if (this.#mode !== "drop" && this.#matched === 0 && from < end) {
      this.#forward(chunk.subarray(from, end));
    }
  }

  /** Another prefix that agrees with the bytes matched so far and goes on with `byte`. */
  #switchPrefix(byte: number): boolean {
    const m = this.#matched;
    for (const p of PREFIXES) {
      if (p === this.#prefix || p.length <= m || p[m] !== byte) continue;
      let same = true;
      for (let i = 0; i < m && same; i++) same = p[i] === this.#prefix[i];
      if (same) {
        this.#prefix = p;
        return true;
      }
    }
    return false;
  }

  #endLine(): void {
    if (this.#mode === "drop" && this.#allowance !== Infinity) {
      // The rest of a line that was cut: what was forwarded is charged, the rest dropped.
      this.#droppedLines++;
      this.#budget.drop(this.#lineBytes - this.#allowance);
    } else if (this.#mode === "drop") {
      this.#droppedLines++;
      this.#budget.drop(this.#lineBytes);
    } else if (this.#mode === "charge") {
      this.#chargedLines++;
      this.#budget.spend(this.#lineBytes);
    }
    this.#lineBytes = 0;
    this.#allowance = Infinity;
    this.#mode = "scan";
  }
}
