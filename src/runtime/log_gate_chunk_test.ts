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
  const g = new LogGate(budget, (b) => void out.push(b.slice()), () => false, expects);
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
