import type { LogBudget } from "./log_budget.ts";
import { LineStart, MAX_HELD } from "./_line_start.ts";
import type { Kind, LogGateClaims, Mode } from "./_log_gate_types.ts";
export type { LogGateClaims } from "./_log_gate_types.ts";

const LF = 0x0a;
/** The least a line not in the SDK's forms may have before it is cut, whatever the budget holds. */
const MIN_ALLOWANCE = 64 * 1024;
/** How much of a request of the plugin's is charged to the request budget (the rest: the log's). */
const REQUEST_FREE_BYTES = 64 * 1024;
/** Ends a line cut short, so that the decoder sees (and reports) a line that is not JSON. */
const NEWLINE = Uint8Array.of(LF);

/** Response ids passed uncharged whose request may still be pending, kept at most (then swept). */
const PASSED_RESPONSES_SWEEP = 1024;

/**
 * Sits between a plugin's stdout and the JSON-RPC decoder, and keeps what a plugin writes
 * there from costing the host more than its {@link LogBudget} allows, before any line is
 * decoded or parsed. Each line is classified by how it begins:
 *
 * - `{"jsonrpc":"2.0","id":` (how the SDK writes every response and request), a numeric id
 *   (an optional `-` and at most 16 digits, no leading zero), then `,"result":` or
 *   `,"error":`, for an id the host is waiting for (`isPending`): a response to a request of
 *   the host's; passes uncharged, whatever its size (bounded elsewhere: line length), once per
 *   id: a second such line for an id still pending is handled as "anything else" below. When
 *   the line has reached the decoder and its id is still pending, it was not that response
 *   (not JSON, or a later `"id"` key won): its bytes are charged to the byte budget then, and
 *   the decoder has reported it as it does any garbage.
 * - the same form with `result` or `error` next for an id the host is not waiting for (a late
 *   answer to a request that timed out, or a made-up one): handled as "anything else" below.
 * - the same form with a numeric id but anything else next (a request of the plugin's to a host
 *   service, `,"method":`): passes while the plugin's request budget (`requests`, 8 MiB/s by
 *   default) is not in debt, whatever the log budget, so that a plugin over its log budget can
 *   still call the host; up to 64 KiB of it is charged to the request budget when it ends,
 *   whatever it turned out to be (a line that only looks like a request costs the same). Past
 *   64 KiB it is handled like the other lines below as well, decided when it crosses 64 KiB:
 *   charged to the log budget when it ends and cut past what that budget holds (at least
 *   64 KiB); while the log budget is spent it is cut at 64 KiB (the decoder gets at most 64 KiB
 *   of it, and reports it as not JSON). While the request budget is in debt, a request line is
 *   handled as "anything else" below; when the log budget is spent too, it is dropped unparsed
 *   and `refuseRequest` answers its id with an error (at most as often as the request budget's
 *   `refuse` allows).
 * - `{"jsonrpc":"2.0","method":"$/chunk","params":{"request":`, a numeric id and a comma (the
 *   SDK's `$/chunk`), for a stream that has an uncharged pass left (`claimChunk`: at most as
 *   many as the credit it was granted): passes uncharged, up to the length `claimChunk` gave
 *   (the stream's `max_chunk_bytes`; past it the line is cut, the decoder gets a line that is
 *   not JSON, the rest is dropped). Once it reached the decoder, `settleChunk` tells the
 *   stream, which fails (`STREAM_PROTOCOL`) if it was not its chunk. Any other `$/chunk` line
 *   is handled as "anything else" below.
 * - `{"jsonrpc":"2.0","method":"$/log","params":` (the SDK's `$/log`): passes while the budget
 *   takes records (the record is budgeted after parsing), else is dropped whole.
 * - anything else (other notifications such as `$/ready`, other key orders, ids that are not
 *   numbers, garbage, empty lines): while the budget is ready it passes and its byte length is
 *   charged to the byte budget when it ends; otherwise it is dropped unparsed (and counted as a
 *   dropped record). Such a line may be at most as long as the byte budget holds when it
 *   starts (at least 64 KiB; the budget holds at most its burst, 2 s of `bytes_per_s`): past
 *   that it is cut, a newline ends what was forwarded (the decoder reports it as not JSON) and
 *   the rest is dropped. The stream's first line always passes whole (charged, unless it is
 *   in the id form), so that `$/ready` gets through even when a restarted plugin finds its
 *   shared budget spent.
 *
 * So a plugin that does not use the SDK's encoding loses its other lines, its responses and
 * requests too, while it is over its log budget, and its lines longer than what is left of it.
 * One that uses it can make the host parse, without a budget, only one line per request of the
 * host's it waits for, one line per chunk of credit the host granted (each at most the stream's
 * `max_chunk_bytes`), and request lines of its own as fast as its request budget allows. The check of what a
 * line that passed uncharged turned out to be costs nothing per byte (the decoder parses each
 * line once; the gate asks afterwards). A plugin sending megabyte lines over its budget costs
 * the host a scan for the next newline instead of a string and an object per line. At most {@link MAX_HELD} bytes of a line start
 * are held back while it is classified; the bytes it forwards are views of the chunk it got
 * (held bytes that came with an earlier chunk are copied once).
 */
export class LogGate {
  readonly #budget: LogBudget;
  readonly #forward: (bytes: Uint8Array) => void;
  readonly #isPending: (id: number) => boolean;
  readonly #claims: LogGateClaims;
  /** Response ids passed uncharged (one line each). */
  readonly #passedResponses = new Set<number>();
  /** What the current line passed uncharged as, to be checked once the decoder has it. */
  #claim: { readonly kind: "chunk" | "response" | "request"; readonly id: number } | undefined;
  /** At a line start: how many bytes of it were read so far (held, not forwarded yet). */
  readonly #start = new LineStart();
  /** The held bytes that came with earlier chunks (the first `#savedLength` of the line). */
  readonly #saved = new Uint8Array(MAX_HELD);
  #savedLength = 0;
  #mode: Mode = "scan";
  /** Bytes of the current line counted so far (`charge` and `drop`). */
  #lineBytes = 0;
  /** How many bytes the current `charge` line may have before it is cut. */
  #allowance = Infinity;
  /** A `charge` line that ends within this many bytes is not charged (the id form). */
  #free = 0;
  /** The current line is in the id form and its allowance is decided when it passes `#free`. */
  #late = false;
  #firstLine = true;
  #cutLines = 0;
  #droppedLines = 0;
  #droppedOtherLines = 0;
  #chargedLines = 0;
  #falseResponses = 0;
  /** The length `claimChunk` allowed the current chunk line. */
  #chunkAllowance = Infinity;

  /**
   * @param forward receives the bytes that pass (the decoder's `receive`); it must parse
   *   synchronously, since the claims are checked right after a line's last byte went to it
   * @param claims what passes uncharged (see {@linkcode LogGateClaims}); default: nothing
   */
  constructor(
    budget: LogBudget,
    forward: (bytes: Uint8Array) => void,
    claims: LogGateClaims = {},
  ) {
    this.#budget = budget;
    this.#forward = forward;
    this.#isPending = claims.isPending ?? (() => false);
    this.#claims = claims;
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

  /**
   * Bytes of the line being forwarded, counted up to what was forwarded (its newline included
   * once it came): while the decoder parses a line, that line's length.
   */
  get lineBytes(): number {
    return this.#lineBytes;
  }

  /** Lines that passed uncharged as a response and were not it (then charged). */
  get falseResponses(): number {
    return this.#falseResponses;
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
        if (this.#late && this.#lineBytes + (stop - pos) > this.#free) {
          // A line in the id form too long to pass uncharged: the budget decides what it may have.
          this.#late = false;
          if (this.#budget.ready()) {
            this.#allowance = Math.max(MIN_ALLOWANCE, this.#budget.availableBytes());
          }
        }
        if (this.#mode !== "drop" && this.#lineBytes + (stop - pos) > this.#allowance) {
          // Too long for what the budget held (or for a chunk): forward up to the allowance, end
          // it, drop the rest.
          const keep = Math.max(0, this.#allowance - this.#lineBytes);
          this.#forward(chunk.subarray(from, pos + keep));
          this.#forward(NEWLINE);
          if (this.#mode === "charge") {
            this.#budget.spend(this.#allowance);
            this.#droppedOtherLines++;
          }
          this.#cutLines++;
          this.#mode = "drop";
          this.#lineBytes = this.#allowance;
          pos += keep;
          from = pos;
          this.#settle(true);
          continue;
        }
        this.#lineBytes += stop - pos;
        if (this.#mode === "drop") from = stop;
        pos = stop;
        if (lf >= 0) {
          // The whole line goes to the decoder before what it claimed to be is checked.
          if (from < pos) this.#forward(chunk.subarray(from, pos));
          from = pos;
          this.#endLine();
        }
        continue;
      }
      // At a line start: classify it, holding the bytes read back.
      const start = this.#start;
      if (start.matched === 0 && pos > from) {
        this.#forward(chunk.subarray(from, pos));
        from = pos;
      }
      let complete = false;
      while (pos < end) {
        if (!start.accept(chunk[pos]!)) break;
        pos++;
        complete = start.complete;
        if (complete) break;
      }
      if (pos === end && !complete) {
        // The rest comes later: keep what came with this chunk.
        this.#saved.set(chunk.subarray(from, end), this.#savedLength);
        this.#savedLength += end - from;
        break;
      }
      const held = start.matched;
      const kind = this.#classify();
      const saved = this.#savedLength;
      start.reset();
      this.#savedLength = 0;
      const first = this.#firstLine;
      this.#firstLine = false;
      this.#allowance = Infinity;
      this.#free = 0;
      this.#late = false;
      if (kind === "response") {
        this.#mode = "pass";
        if (this.#claim?.kind === "chunk") this.#allowance = this.#chunkAllowance;
      } else if (kind === "request") {
        // Passes uncharged up to `REQUEST_FREE_BYTES`; past that, the budget decides (`#late`).
        this.#mode = "charge";
        this.#free = REQUEST_FREE_BYTES;
        if (!first) {
          this.#allowance = REQUEST_FREE_BYTES;
          this.#late = true;
        }
      } else if (kind === "refused") {
        this.#droppedOtherLines++;
        this.#mode = "drop";
        this.#claims.refuseRequest?.(this.#start.id);
      } else if (first || this.#budget.ready()) {
        this.#mode = kind === "log" ? "pass" : "charge";
        if (kind !== "log" && !first) {
          this.#allowance = Math.max(MIN_ALLOWANCE, this.#budget.availableBytes());
        }
      } else {
        // A `$/log` line that passes is budgeted after parsing; any other is charged here.
        if (kind !== "log") this.#droppedOtherLines++;
        this.#mode = "drop";
      }
      this.#lineBytes = held;
      if (this.#mode === "drop") {
        from = pos;
        continue;
      }
      // Part of the line start came with earlier chunks: forward it from where it was kept.
      if (saved > 0) this.#forward(this.#saved.slice(0, saved));
    }
    // What is left since `from` is passed bytes, unless it is a held line start or dropped.
    if (this.#mode !== "drop" && this.#start.matched === 0 && from < end) {
      this.#forward(chunk.subarray(from, end));
    }
  }

  /**
   * Ends the stream: forwards a line start still held back (at most {@link MAX_HELD} bytes,
   * which the decoder then reports as a truncated line, unparsed). Call it before the decoder's
   * own end.
   */
  end(): void {
    if (this.#mode === "scan" && this.#savedLength > 0) {
      this.#forward(this.#saved.slice(0, this.#savedLength));
    }
    this.#start.reset();
    this.#savedLength = 0;
    this.#claim = undefined; // the process is gone: nothing to check
  }

  /** What the line start read is. */
  #classify(): Kind {
    this.#claim = undefined;
    const form = this.#start.form;
    if (form === "log" || form === "other") return form;
    const id = this.#start.id;
    if (!Number.isSafeInteger(id)) return "other";
    if (form === "request") return this.#classifyRequest(id);
    if (form === "chunk") {
      // A chunk the stream has an uncharged pass for goes like a response; any other is charged.
      const max = this.#claims.claimChunk?.(id) ?? 0;
      if (!(max > 0)) return "other";
      this.#chunkAllowance = max;
      this.#claim = { kind: "chunk", id };
      return "response";
    }
    // A response to an id the host does not wait for (late, or made up) costs like a log line;
    // so does a second one for a pending id: one uncharged line per pending request.
    if (!this.#isPending(id) || this.#passedResponses.has(id)) return "other";
    this.#passedResponses.add(id);
    this.#claim = { kind: "response", id };
    return "response";
  }

  /** A line in the request form: on the request budget, else the log budget's (see the class). */
  #classifyRequest(id: number): Kind {
    const requests = this.#claims.requests;
    if (requests === undefined) return "other";
    if (requests.ready()) {
      this.#claim = { kind: "request", id };
      return "request";
    }
    return this.#budget.ready() || this.#firstLine ? "other" : "refused";
  }

  /**
   * The current line, which passed uncharged, has reached the decoder (whole, or `cut`): was it
   * what its start claimed? A chunk's stream decides; a response that was not one (its id still
   * pending) is charged now, as garbage.
   */
  #settle(cut: boolean): void {
    const claim = this.#claim;
    this.#claim = undefined;
    if (claim === undefined) return;
    if (claim.kind === "request") {
      // Up to 64 KiB of it, whatever it turned out to be; past that the log budget pays too.
      this.#claims.requests!.spend(Math.min(this.#lineBytes, this.#free));
      return;
    }
    if (claim.kind === "chunk") {
      // A line that lied about being a chunk costs what any other line does.
      if (this.#claims.settleChunk?.(claim.id, cut) === false) {
        this.#chargedLines++;
        this.#budget.spend(this.#lineBytes);
      }
      return;
    }
    if (this.#isPending(claim.id)) {
      this.#falseResponses++;
      this.#chargedLines++;
      this.#budget.spend(this.#lineBytes);
    } else this.#passedResponses.delete(claim.id);
    if (this.#passedResponses.size > PASSED_RESPONSES_SWEEP) {
      for (const id of this.#passedResponses) {
        if (!this.#isPending(id)) this.#passedResponses.delete(id);
      }
    }
  }

  #endLine(): void {
    if (this.#mode === "pass" || this.#claim?.kind === "request") this.#settle(false);
    if (this.#mode === "drop" && this.#allowance !== Infinity) {
      // The rest of a line that was cut: what was forwarded is charged, the rest dropped.
      this.#droppedLines++;
      this.#budget.drop(this.#lineBytes - this.#allowance);
    } else if (this.#mode === "drop") {
      this.#droppedLines++;
      this.#budget.drop(this.#lineBytes);
    } else if (this.#mode === "charge" && this.#lineBytes > this.#free) {
      this.#chargedLines++;
      this.#budget.spend(this.#lineBytes);
    }
    this.#lineBytes = 0;
    this.#allowance = Infinity;
    this.#free = 0;
    this.#late = false;
    this.#mode = "scan";
  }
}
