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
const READY = '{"jsonrpc":"2.0","method":"$/ready","params":{"protocol":1}}';
const LOG_PREFIX = '{"jsonrpc":"2.0","method":"$/log","params":';
const ID_PREFIX = '{"jsonrpc":"2.0","id":';
/** Lines of every kind; the first (`$/ready`) always passes. */
const LINES = [
  READY,
  log(1),
  JSON.stringify({ jsonrpc: "2.0", id: 1, result: "$/log" }), // SDK response: passes
  log(2, 300),
  '{"jsonrpc":"2.0","method":"$/lo"}', // shares most of the log prefix: other
  "", // an empty line: other
  '{"method":"$/log","jsonrpc":"2.0","params":{}}', // another key order: other
  '{"jsonrpc":"2.0","method":"$/log","params"', // the prefix, cut short, then the line ends
  JSON.stringify({ jsonrpc: "2.0", id: "x", method: "host/kv.get", params: {} }), // SDK request
  '{"jsonrpc":"2.0","i', // the id prefix, cut short: other
  '{"id":2,"jsonrpc":"2.0","result":1}', // a response in another key order: other
  log(3),
  JSON.stringify({ jsonrpc: "2.0", id: 3, error: { code: 1, message: "no" } }), // passes
  "x".repeat(100), // garbage: other
];
const INPUT = enc.encode(LINES.join("\n") + "\n" + log(4, 50)); // the last line is unfinished
const isOther = (l: string) => !l.startsWith(LOG_PREFIX) && !l.startsWith(ID_PREFIX);
const OTHERS = LINES.slice(1).filter(isOther);
const LOGS = LINES.filter((l) => l.startsWith(LOG_PREFIX));

/** Feeds `input` in chunks cut at `cuts`; returns what was forwarded, as text. */
function run(gate: LogGate, input: Uint8Array, cuts: number[], out: Uint8Array[]): string {
  let at = 0;
  for (const cut of [...cuts, input.length]) {
    gate.push(input.subarray(at, cut));
    at = cut;
  }
  return out.map((b) => dec.decode(b)).join("");
}

/** Every split of `input` into two or three chunks, and byte by byte. */
function splits(input: Uint8Array): number[][] {
  const all: number[][] = [];
  for (let a = 0; a <= input.length; a++) all.push([a], [a, Math.min(input.length, a + 1)]);
  all.push(Array.from({ length: input.length }, (_, i) => i));
  return all;
}

/** A budget that takes records (a full one, or one with 10 s of tokens) and a fake clock. */
function freshBudget(): LogBudget {
  return new LogBudget("p", { recordsPerS: 1000, bytesPerS: 1 << 20, clock, logger: quiet });
}

Deno.test("LogGate forwards everything, unchanged, while the budget takes records, and charges the other lines", () => {
  for (let cut = 0; cut <= INPUT.length; cut += 3) {
    const out: Uint8Array[] = [];
    const b = freshBudget();
    const gate = new LogGate(b, (bytes) => out.push(bytes.slice()));
    assert.equal(run(gate, INPUT, [cut, Math.min(INPUT.length, cut + 7)], out), dec.decode(INPUT));
    assert.equal(gate.droppedLines, 0);
    // `$/ready` and the other lines, charged with their length and newline; nothing else.
    assert.equal(gate.chargedLines, OTHERS.length + 1);
    const charged = [READY, ...OTHERS].reduce((n, l) => n + l.length + 1, 0);
    assert.equal(b.stats.passedBytes, charged);
  }
});

Deno.test("LogGate, budget spent: drops $/log and other lines whole, passes SDK responses and requests and the first line, whatever the chunks", () => {
  const kept = LINES.filter((l, i) => i === 0 || l.startsWith(ID_PREFIX)).map((l) => l + "\n")
    .join("");
  for (const cuts of splits(INPUT)) {
    const out: Uint8Array[] = [];
    const b = budget(true);
    const gate = new LogGate(b, (bytes) => out.push(bytes.slice()));
    assert.equal(run(gate, INPUT, cuts, out), kept, `cuts ${cuts.slice(0, 3)}`);
    // The last $/log line is unfinished: still being dropped.
    assert.equal(gate.droppedLines, LOGS.length + OTHERS.length);
    assert.equal(gate.droppedOtherLines, OTHERS.length);
    const droppedBytes = [...LOGS, ...OTHERS].reduce((n, l) => n + l.length + 1, 0);
    assert.equal(b.stats.droppedBytes, droppedBytes);
    assert.equal(b.dropped, LOGS.length + OTHERS.length);
  }
});

Deno.test("LogGate: an other line that spends the byte budget makes the next ones drop; responses still pass", () => {
  let now = 0;
  const b = new LogBudget("p", {
    recordsPerS: 1000,
    bytesPerS: 1000,
    maxRecordBytes: 100,
    burstSeconds: 1,
    clock: { now: () => now, setTimeout: () => 0, clearTimeout: () => {} },
    logger: quiet,
  });
  const out: Uint8Array[] = [];
  const gate = new LogGate(b, (bytes) => out.push(bytes.slice()));
  const big = '{"jsonrpc":"2.0","method":"$/nope","params":[' + "[{}],".repeat(1000) + "0]}";
  const response = JSON.stringify({ jsonrpc: "2.0", id: 7, result: 1 });
  gate.push(enc.encode(READY + "\n" + big + "\n" + big.slice(0, 9)));
  gate.push(enc.encode(big.slice(9) + "\n" + response + "\n" + log(1) + "\n"));
  assert.equal(out.map((x) => dec.decode(x)).join(""), READY + "\n" + big + "\n" + response + "\n");
  assert.equal(gate.droppedOtherLines, 1);
  assert.equal(gate.droppedLines, 2);
  now = 10_000; // the debt is paid back: other lines pass again
  out.length = 0;
  gate.push(enc.encode(big + "\n"));
  assert.equal(out.map((x) => dec.decode(x)).join(""), big + "\n");
});

Deno.test("LogGate: the first line passes even when the shared budget is spent (a restart's $/ready)", () => {
  for (const first of [READY, log(0), "garbage"]) {
    const out: Uint8Array[] = [];
    const gate = new LogGate(budget(true), (bytes) => out.push(bytes.slice()));
    gate.push(enc.encode(first + "\n" + READY + "\n"));
    assert.equal(out.map((x) => dec.decode(x)).join(""), first + "\n");
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
  gate.push(enc.encode(READY + "\n" + log(1) + "\n" + log(2).slice(0, 50)));
  now = 1_000; // a token again: the line being dropped stays dropped, the next one passes
  gate.push(enc.encode(log(2).slice(50) + "\n" + log(3) + "\n"));
  assert.equal(out.map((x) => dec.decode(x)).join(""), READY + "\n" + log(3) + "\n");
  assert.equal(gate.droppedLines, 2);
});

Deno.test("LogGate cuts an other line longer than the budget holds: the decoder gets its start and a newline", () => {
  const long = '{"method":"$/nope","jsonrpc":"2.0","params":[' + "[{}],".repeat(40_000) + "0]}";
  const response = JSON.stringify({ jsonrpc: "2.0", id: 7, result: 1 });
  const input = enc.encode(READY + "\n" + long + "\n" + response + "\n");
  const allowance = 64 * 1024; // the least, above what this budget holds (1000 bytes)
  for (
    const cuts of [[], [READY.length + 10], [READY.length + 1 + allowance], [100_000], [
      READY.length + 1 + allowance - 1,
      READY.length + 1 + allowance + 1,
    ]]
  ) {
    const b = new LogBudget("p", {
      recordsPerS: 1000,
      bytesPerS: 1000,
      maxRecordBytes: 100,
      clock,
      logger: quiet,
    });
    const out: Uint8Array[] = [];
    const gate = new LogGate(b, (bytes) => out.push(bytes.slice()));
    const got = run(gate, input, cuts, out);
    const expected = READY + "\n" + long.slice(0, allowance) + "\n" + response + "\n";
    assert.equal(got.length, expected.length, `cuts ${cuts}`);
    assert.equal(got, expected);
    assert.equal(gate.cutLines, 1);
    assert.equal(b.stats.droppedBytes, long.length + 1 - allowance);
  }
});
