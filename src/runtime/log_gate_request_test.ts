/**
 * The log gate and the plugin's own requests (`host/<service>.<op>`) and responses to ids the
 * host does not wait for: what passes on the request budget, what is charged to the log budget,
 * and what is refused unparsed. The decoder is modelled (`_testing.ts`);
 * `tests/log_gate_bypass_test.ts` does the same with real plugin processes.
 */
import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { LogBudget, type LogBudgetClock } from "./log_budget.ts";
import { LogGate } from "./log_gate.ts";
import { refuseRequest, RequestBudget } from "./request_budget.ts";
import { decoderModel } from "./_testing.ts";

const quiet = { warning() {} } as unknown as Logger;
const enc = new TextEncoder();
const dec = new TextDecoder();
const READY = '{"jsonrpc":"2.0","method":"$/ready","params":{"protocol":1}}';
const request = (id: number, method = "host/process.exec") =>
  JSON.stringify({ jsonrpc: "2.0", id, method, params: { cmd: "x" } });

/**
 * A log budget of 1000 bytes/s and a request budget of 2000 bytes/s (burst 1 s each, 2 answers
 * a second) on a clock the test moves; the log budget spent (no record token) when asked.
 */
function budgets(spent: boolean) {
  const t = { now: 0 };
  const clock: LogBudgetClock = { now: () => t.now, setTimeout: () => 0, clearTimeout: () => {} };
  const b = new LogBudget("p", {
    recordsPerS: 1000,
    bytesPerS: 1000,
    burstSeconds: 1,
    clock,
    logger: quiet,
    requests: { bytesPerS: 2000, answersPerS: 2, burstSeconds: 1 },
  });
  if (spent) { while (b.take()); }
  return { b, t };
}

/** A gate over a modelled decoder, past its first line (`$/ready`, which always passes). */
function gateWith(b: LogBudget, pending: number[] = []) {
  const model = decoderModel(pending, [], b.requests);
  const gate = new LogGate(b, model.forward, model.claims);
  gate.push(enc.encode(READY + "\n"));
  const lines = (...ls: string[]) => {
    model.out.length = 0;
    const input = enc.encode(ls.map((l) => l + "\n").join(""));
    for (let i = 0; i < input.length; i += 7) gate.push(input.subarray(i, i + 7));
    return model.out.map((x) => dec.decode(x)).join("").split("\n").slice(0, -1);
  };
  return { gate, model, lines };
}

Deno.test("LogGate: requests pass on the request budget while the log budget is spent, and are charged to it whatever they are", () => {
  const { b } = budgets(true);
  const { lines } = gateWith(b);
  const logBytes = b.stats.passedBytes;
  const garbage = '{"jsonrpc":"2.0","id":5,"method":"host/x","params":['; // not JSON
  const sent = [request(1), garbage, request(2, "nope"), request(3)];
  assert.deepEqual(lines(...sent), sent);
  assert.equal(b.stats.passedBytes, logBytes, "nothing charged to the log budget");
  assert.equal(b.requests.stats.passedBytes, sent.reduce((n, l) => n + l.length + 1, 0));
});

Deno.test("LogGate: with the request budget in debt, requests are charged to the log budget; with both spent they are refused unparsed and answered", () => {
  const { b, t } = budgets(false);
  const { gate, model, lines } = gateWith(b);
  const big = request(1, "host/" + "x".repeat(2500)); // spends the 2000-byte request budget
  assert.deepEqual(lines(big), [big]);
  assert.equal(b.requests.ready(), false);
  // Now on the log budget (it holds about 940 bytes): passes, charged there, until it is spent.
  const logBytes = b.stats.passedBytes;
  assert.deepEqual(lines(request(2)), [request(2)]);
  assert.equal(b.stats.passedBytes, logBytes + request(2).length + 1);
  while (b.take()); // the log budget spent too: refused unparsed, answered (2 answers a second)
  assert.deepEqual(lines(request(3), request(4), request(5)), []);
  assert.deepEqual(model.refused, [3, 4, 5]);
  assert.equal(gate.droppedOtherLines, 3);
  const { refused, answered } = b.requests.stats;
  assert.deepEqual({ refused, answered }, { refused: 0, answered: 0 }); // the model answers none
  t.now += 10_000; // both recover: requests pass again on the request budget
  assert.deepEqual(lines(request(6)), [request(6)]);
});

Deno.test("refuseRequest answers with PLUGIN_REQUEST_BUDGET, at most as often as the request budget's answers allow", () => {
  let now = 0;
  const requests = new RequestBudget({
    answersPerS: 2,
    burstSeconds: 1,
    clock: { now: () => now },
  });
  const answers: unknown[][] = [];
  const peer = { respondError: (...a: unknown[]) => void answers.push(a) };
  for (const id of [1, 2, 3, 4]) refuseRequest(peer, "liar", { requests }, id);
  assert.deepEqual(answers.map((a) => a[0]), [1, 2]);
  assert.equal(answers[0]![1], -32001);
  assert.match(String(answers[0]![2]), /^plugin liar: request refused unread: .*both spent/);
  assert.deepEqual(answers[0]![3], {
    code: "PLUGIN_REQUEST_BUDGET",
    details: { plugin: "liar", bytesPerS: requests.bytesPerS },
  });
  assert.deepEqual(requests.stats, { passed: 0, passedBytes: 0, refused: 4, answered: 2 });
  now = 1_000; // two more answers a second later
  for (const id of [5, 6, 7]) refuseRequest(peer, "liar", { requests }, id);
  assert.deepEqual(answers.map((a) => a[0]), [1, 2, 5, 6]);
});

Deno.test("LogGate: a response to an id the host does not wait for is charged, and dropped while the budget is spent", () => {
  const late = JSON.stringify({ jsonrpc: "2.0", id: 9, result: "late" });
  const again = JSON.stringify({ jsonrpc: "2.0", id: 4, result: "twice" });
  const answer = JSON.stringify({ jsonrpc: "2.0", id: 4, result: "ok" });
  {
    const { b } = budgets(false);
    const { gate, lines } = gateWith(b, [4]);
    const passed = b.stats.passedBytes;
    assert.deepEqual(lines(late, answer, again), [late, answer, again]);
    assert.equal(b.stats.passedBytes, passed + late.length + 1 + again.length + 1);
    assert.equal(gate.chargedLines, 3); // $/ready, late, again
  }
  const { b } = budgets(true);
  const { gate, lines } = gateWith(b, [4]);
  assert.deepEqual(lines(late, answer, again), [answer]);
  assert.equal(gate.droppedOtherLines, 2);
});

Deno.test("LogGate without a request budget handles request lines like other lines", () => {
  const { b } = budgets(true);
  const { out, forward } = decoderModel([]);
  const gate = new LogGate(b, forward, {});
  gate.push(enc.encode(READY + "\n" + request(1) + "\n"));
  assert.equal(out.map((x) => dec.decode(x)).join(""), READY + "\n");
});
