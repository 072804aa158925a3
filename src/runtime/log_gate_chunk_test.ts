import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { LogBudget, type LogBudgetClock } from "./log_budget.ts";
import { LogGate } from "./log_gate.ts";

const clock: LogBudgetClock = { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };
const quiet = { warning() {} } as unknown as Logger;
const enc = new TextEncoder();
const dec = new TextDecoder();

const chunk = (request: unknown, seq: number) =>
  JSON.stringify({ jsonrpc: "2.0", method: "$/chunk", params: { request, seq, data: "d" } });

/** Feeds `lines` one byte at a time (the worst split); returns the lines forwarded. */
function gate(lines: string[], expects: (id: number) => boolean): string[] {
  const budget = new LogBudget("p", { recordsPerS: 1, clock, logger: quiet });
  const out: Uint8Array[] = [];
  const g = new LogGate(budget, (b) => void out.push(b.slice()), {
    claimChunk: (id) => expects(id) ? Infinity : 0,
  });
  const input = enc.encode(lines.join("\n") + "\n");
  g.push(enc.encode('{"jsonrpc":"2.0","method":"$/ready","params":{}}\n'));
  while (budget.take()); // spent: only what passes uncharged gets through now
  for (let i = 0; i < input.length; i++) g.push(input.subarray(i, i + 1));
  return out.map((b) => dec.decode(b)).join("").split("\n").slice(1, -1);
}

Deno.test("LogGate passes a $/chunk of a stream with credit uncharged, whatever the budget", () => {
  const lines = [chunk(7, 0), chunk(7, 1), chunk(12345, 0)];
  assert.deepEqual(gate(lines, (id) => id === 7 || id === 12345), lines);
});

Deno.test("LogGate charges a $/chunk no stream expects: dropped while the budget is spent", () => {
  const lines = [
    chunk(8, 0), // no credit / no such stream
    chunk("7", 0), // a string id
    chunk(-7, 0), // a negative id: no stream of the host's
    '{"jsonrpc":"2.0","method":"$/chunk","params":{"seq":0,"request":7}}', // another key order
    chunk(7, 0), // expected: passes
  ];
  assert.deepEqual(gate(lines, (id) => id === 7), [chunk(7, 0)]);
});

/**
 * A decoder for the gate's output, as the peer is: each whole line is parsed at once; a
 * response settles its pending id, a `$/chunk` is recorded. `events` lists what happened, in
 * order, with the gate's `settleChunk` calls.
 */
function decoder(pending: Set<number>) {
  const events: string[] = [];
  let text = "";
  return {
    events,
    forward(bytes: Uint8Array): void {
      text += dec.decode(bytes);
      for (let lf = text.indexOf("\n"); lf >= 0; lf = text.indexOf("\n")) {
        const line = text.slice(0, lf);
        text = text.slice(lf + 1);
        let m: { id?: unknown; method?: string; params?: { request?: unknown } };
        try {
          m = JSON.parse(line);
        } catch {
          events.push(`garbage ${line.length}`);
          continue;
        }
        if (m.method === "$/chunk") events.push(`chunk ${m.params?.request}`);
        else if (typeof m.id === "number" && pending.delete(m.id)) events.push(`response ${m.id}`);
        else events.push(`other ${line.length}`);
      }
    },
  };
}

Deno.test("LogGate tells the stream once its claimed line is decoded, and cuts one past its limit", () => {
  const budget = new LogBudget("p", { recordsPerS: 1, clock, logger: quiet });
  const d = decoder(new Set());
  const g = new LogGate(budget, d.forward, {
    claimChunk: (id) => (id === 7 ? 300 : 0),
    settleChunk: (id, cut) => (d.events.push(`settle ${id} ${cut}`), true),
  });
  g.push(enc.encode('{"jsonrpc":"2.0","method":"$/ready","params":{}}\n'));
  while (budget.take());
  const long = JSON.stringify({
    jsonrpc: "2.0",
    method: "$/chunk",
    params: { request: 7, seq: 1, data: "x".repeat(1000) },
  });
  const input = enc.encode([chunk(7, 0), long, chunk(7, 2), ""].join("\n"));
  for (let i = 0; i < input.length; i++) g.push(input.subarray(i, i + 1));
  assert.deepEqual(d.events, [
    "other 48", // $/ready
    "chunk 7",
    "settle 7 false", // after the decoder had it
    "garbage 300", // cut after 300 bytes: not JSON, the rest dropped unread
    "settle 7 true",
    "chunk 7",
    "settle 7 false",
  ]);
  assert.equal(g.cutLines, 1);
});

Deno.test("LogGate passes one line per pending id uncharged; one that was not its response is charged", () => {
  const budget = new LogBudget("p", { recordsPerS: 1, clock, logger: quiet });
  const pending = new Set([5, 6]);
  const d = decoder(pending);
  const g = new LogGate(budget, d.forward, { isPending: (id) => pending.has(id) });
  const ready = '{"jsonrpc":"2.0","method":"$/ready","params":{}}';
  g.push(enc.encode(ready + "\n"));
  while (budget.take()); // spent: what is charged is dropped from now on
  const fake = '{"jsonrpc":"2.0","id":5,"result":"' + "y".repeat(500) + '","id":-5}';
  const real = '{"jsonrpc":"2.0","id":5,"result":1}';
  const input = enc.encode(
    [fake, fake, real, '{"jsonrpc":"2.0","id":6,"result":2}', ""].join("\n"),
  );
  for (let i = 0; i < input.length; i++) g.push(input.subarray(i, i + 1));
  // The first passed (the decoder saw id -5), and is charged then; the second and the real
  // response to 5 are charged up front, so dropped; 6 passes.
  assert.deepEqual(d.events, ["other 48", "other " + fake.length, "response 6"]);
  assert.equal(g.falseResponses, 1);
  assert.equal(budget.stats.passedBytes, ready.length + 1 + fake.length + 1);
  assert.equal(g.droppedOtherLines, 2);
  assert.deepEqual([...pending], [5]);
});

Deno.test("LogGate charges a line that passed as a chunk but was none", () => {
  const budget = new LogBudget("p", { recordsPerS: 1000, bytesPerS: 10_000, clock, logger: quiet });
  const d = decoder(new Set());
  let met = true;
  const g = new LogGate(budget, d.forward, {
    claimChunk: (id) => (id === 7 ? 100_000 : 0),
    settleChunk: () => met,
  });
  g.push(enc.encode('{"jsonrpc":"2.0","method":"$/ready","params":{}}\n'));
  const charged = g.chargedLines;
  g.push(enc.encode(chunk(7, 0) + "\n"));
  assert.equal(g.chargedLines, charged); // a chunk that was one: free
  met = false;
  const lie = '{"jsonrpc":"2.0","method":"$/chunk","params":{"request":7,' + "x".repeat(2000) +
    "\n";
  g.push(enc.encode(lie));
  assert.equal(g.chargedLines, charged + 1);
});
