/**
 * Test helpers of the log gate: a model of what reads the gate's output (the JSON-RPC peer of
 * a plugin process), so that tests see the gate's claims answered as the host answers them.
 *
 * @module
 */
import type { LogGateClaims } from "./_log_gate_types.ts";
import { RequestBudget } from "./request_budget.ts";

const dec = new TextDecoder();

/** What a line is to the peer (parsed once per distinct line: tests feed the same lines often). */
interface Outcome {
  readonly kind: "request" | "response" | "none";
  readonly id: number;
}
const outcomes = new Map<string, Outcome>();

function outcome(line: string): Outcome {
  let m: { id?: unknown; method?: unknown; result?: unknown; error?: unknown };
  try {
    m = JSON.parse(line);
  } catch {
    return { kind: "none", id: 0 };
  }
  if (typeof m !== "object" || m === null || typeof m.id !== "number") {
    return { kind: "none", id: 0 };
  }
  if (typeof m.method === "string") {
    return { kind: m.method.startsWith("host/") ? "request" : "none", id: m.id };
  }
  return { kind: "result" in m || "error" in m ? "response" : "none", id: m.id };
}

/**
 * A decoder for the gate's output, as the peer is: each whole line is parsed once it is
 * forwarded whole; a response to a pending id settles it, a request of a `host/` method starts
 * being served (its handler is asynchronous, so it stays served), anything else changes nothing.
 * Its claims are the host's: `isPending` for `pending` (each id asked about is pushed to
 * `asked`), `requests` (default: a request budget of the defaults, on a clock that stands
 * still), and `refuseRequest`, which records the ids refused in `refused`.
 */
export function decoderModel(
  pending: number[],
  asked: number[] = [],
  requests = new RequestBudget({ clock: { now: () => 0 } }),
): {
  readonly out: Uint8Array[];
  readonly forward: (bytes: Uint8Array) => void;
  readonly claims: LogGateClaims;
  readonly serving: Set<number>;
  readonly refused: number[];
} {
  const refused: number[] = [];
  const waiting = new Set(pending);
  const serving = new Set<number>();
  const out: Uint8Array[] = [];
  let text = "";
  const forward = (bytes: Uint8Array): void => {
    out.push(bytes.slice());
    text += dec.decode(bytes);
    for (let lf = text.indexOf("\n"); lf >= 0; lf = text.indexOf("\n")) {
      const line = text.slice(0, lf);
      text = text.slice(lf + 1);
      const seen = outcomes.get(line) ?? outcome(line);
      if (outcomes.size < 1000) outcomes.set(line, seen);
      if (seen.kind === "request") serving.add(seen.id);
      else if (seen.kind === "response") waiting.delete(seen.id);
    }
  };
  const claims: LogGateClaims = {
    isPending(id) {
      asked.push(id);
      return waiting.has(id);
    },
    requests,
    refuseRequest: (id) => void refused.push(id),
  };
  return { out, forward, claims, serving, refused };
}
