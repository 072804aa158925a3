import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { LogBudget, type LogBudgetClock } from "./log_budget.ts";
import { LogGate } from "./log_gate.ts";

const clock: LogBudgetClock = { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };
const quiet = { warning() {} } as unknown as Logger;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A budget that is spent (refuses everything) or not. */
function budget(spent: boolean): LogBudget {
  const b = new LogBudget("p", { recordsPerS: 1, clock, logger: quiet });
  if (spent) { while (b.take()); }
  return b;
}

const log = (i: number, size = 10) =>
  JSON.stringify({ jsonrpc: "2.0", method: "$/log", params: { message: "m".repeat(size), i } });
const LINES = [
  log(1),
  JSON.stringify({ jsonrpc: "2.0", id: 1, result: "$/log" }),
  log(2, 300),
  '{"jsonrpc":"2.0","method":"$/lo"}', // shares most of the prefix
  "", // an empty line
  '{"method":"$/log","jsonrpc":"2.0","params":{}}', // another key order: passes
  '{"jsonrpc":"2.0","method":"$/log","params"', // the prefix, cut short, then the line ends
  log(3),
  '{"jsonrpc":"2.0","method":"$/ready","params":{"protocol":1}}',
];
const INPUT = enc.encode(LINES.join("\n") + "\n" + log(4, 50)); // the last line is unfinished

/** Feeds `input` in chunks cut at `cuts`; returns what was forwarded, as text. */
function run(gate: LogGate, input: Uint8Array, cuts: number[], out: Uint8Array[]): string {
  let at = 0;
  for (const cut of [...cuts, input.length]) {
    gate.push(input.subarray(at, cut));
    at = cut;
  }
  return out.map((b) => dec.decode(b)).join("");
}

Deno.test("LogGate forwards everything, unchanged, while the budget takes records", () => {
  for (let cut = 0; cut <= INPUT.length; cut += 3) {
    const out: Uint8Array[] = [];
    const gate = new LogGate(budget(false), (b) => out.push(b.slice()));
    assert.equal(run(gate, INPUT, [cut, Math.min(INPUT.length, cut + 7)], out), dec.decode(INPUT));
    assert.equal(gate.droppedLines, 0);
  }
});

Deno.test("LogGate drops whole $/log lines of a spent budget, whatever the chunks, and counts their bytes", () => {
  const kept = LINES.filter((l) => !l.startsWith('{"jsonrpc":"2.0","method":"$/log","params":'))
    .map((l) => l + "\n").join("");
  // Every split into two or three chunks, and byte by byte.
  const splits: number[][] = [];
  for (let a = 0; a <= INPUT.length; a++) splits.push([a], [a, Math.min(INPUT.length, a + 1)]);
  splits.push(Array.from({ length: INPUT.length }, (_, i) => i));
  for (const cuts of splits) {
    const out: Uint8Array[] = [];
    const b = budget(true);
    const gate = new LogGate(b, (bytes) => out.push(bytes.slice()));
    assert.equal(run(gate, INPUT, cuts, out), kept, `cuts ${cuts.slice(0, 3)}`);
    assert.equal(gate.droppedLines, 3); // the 4th is unfinished: still being dropped
    const droppedBytes = [log(1), log(2, 300), log(3)].reduce((n, l) => n + l.length + 1, 0);
    assert.equal(b.stats.droppedBytes, droppedBytes);
    assert.equal(b.dropped, 3);
  }
});

Deno.test("LogGate decides per line: a budget that recovers lets the next $/log line through", () => {
  let now = 0;
  const b = new LogBudget("p", {
    recordsPerS: 1,
    burstSeconds: 1,
    clock: { now: () => now, setTimeout: () => 0, clearTimeout: () => {} },
    logger: quiet,
  });
  assert.ok(b.take());
  const out: Uint8Array[] = [];
  const gate = new LogGate(b, (bytes) => out.push(bytes.slice()));
  gate.push(enc.encode(log(1) + "\n" + log(2).slice(0, 50)));
  now = 1_000; // a token again: the line being dropped stays dropped, the next one passes
  gate.push(enc.encode(log(2).slice(50) + "\n" + log(3) + "\n"));
  assert.equal(out.map((x) => dec.decode(x)).join(""), log(3) + "\n");
  assert.equal(gate.droppedLines, 2);
});
