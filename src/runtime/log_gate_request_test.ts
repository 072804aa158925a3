/**
 * The log gate and the plugin's own requests (`host/<service>.<op>`) and responses to ids the
 * host does not wait for: what passes uncharged, what is charged, and what is dropped while the
 * budget is spent. The decoder is modelled (`_testing.ts`); `tests/log_gate_bypass_test.ts`
 * does the same with real plugin processes.
 */
import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { LogBudget, type LogBudgetClock } from "./log_budget.ts";
import { LogGate } from "./log_gate.ts";
import { decoderModel } from "./_testing.ts";

const quiet = { warning() {} } as unknown as Logger;
const enc = new TextEncoder();
const dec = new TextDecoder();
const READY = '{"jsonrpc":"2.0","method":"$/ready","params":{"protocol":1}}';
const request = (id: number, method = "host/process.exec") =>
  JSON.stringify({ jsonrpc: "2.0", id, method, params: { cmd: "x" } });

/** A budget of 1000 bytes/s on a clock the test moves; spent (no record token) when asked. */
function budgetAt(spent: boolean) {
  const t = { now: 0 };
  const clock: LogBudgetClock = { now: () => t.now, setTimeout: () => 0, clearTimeout: () => {} };
  const b = new LogBudget("p", {
    recordsPerS: 1000,
    bytesPerS: 1000,
    burstSeconds: 1,
    clock,
    logger: quiet,
  });
  if (spent) { while (b.take()); }
  return { b, t };
}

/** A gate over a modelled decoder, past its first line (`$/ready`, which always passes). */
function gateWith(b: LogBudget, pending: number[] = [], maxRequests = 128) {
  const model = decoderModel(pending, [], maxRequests);
  const gate = new LogGate(b, model.forward, model.claims);
  gate.push(enc.encode(READY + "\n"));
  model.out.length = 0;
  const lines = (...ls: string[]) => {
    model.out.length = 0;
    const input = enc.encode(ls.map((l) => l + "\n").join(""));
    for (let i = 0; i < input.length; i += 7) gate.push(input.subarray(i, i + 7));
    return model.out.map((x) => dec.decode(x)).join("").split("\n").slice(0, -1);
  };
  return { gate, model, lines };
}

Deno.test("LogGate: a request the host serves passes uncharged while the budget is spent", () => {
  const { b } = budgetAt(true);
  const { gate, lines } = gateWith(b);
  const passedBefore = b.stats.passedBytes;
  assert.deepEqual(lines(request(1), request(2), request(3)), [request(1), request(2), request(3)]);
  assert.equal(b.stats.passedBytes, passedBefore);
  assert.equal(gate.falseRequests, 0);
});

Deno.test("LogGate: a line in the request form that starts no request is charged, and while the budget is spent the next requests are dropped until it is ready again", () => {
  const { b, t } = budgetAt(true);
  const { gate, lines } = gateWith(b);
  const bogus = [
    '{"jsonrpc":"2.0","id":5,"method":"host/x","params":[', // not JSON
    request(6, "nope"), // a method the host answers at once (METHOD_NOT_FOUND)
  ];
  for (const line of bogus) {
    t.now += 10_000; // the budget is ready again: requests pass uncharged
    assert.deepEqual(lines(request(t.now)), [request(t.now)]);
    while (b.take()); // and spent once more
    const passed = b.stats.passedBytes;
    const dropped = gate.droppedLines;
    // The false one passes (it looked like a request), is charged; the next two are dropped.
    assert.deepEqual(lines(line, request(7 + t.now), request(8 + t.now)), [line], line);
    assert.equal(b.stats.passedBytes, passed + line.length + 1);
    assert.equal(gate.droppedLines, dropped + 2);
  }
  assert.equal(gate.falseRequests, 2);
  t.now += 10_000; // ready again: a request passes, and the next ones even once it is spent
  assert.deepEqual(lines(request(100)), [request(100)]);
  while (b.take());
  assert.deepEqual(lines(request(101)), [request(101)]);
});

Deno.test("LogGate: a response to an id the host does not wait for is charged, and dropped while the budget is spent", () => {
  const late = JSON.stringify({ jsonrpc: "2.0", id: 9, result: "late" });
  const again = JSON.stringify({ jsonrpc: "2.0", id: 4, result: "twice" });
  const answer = JSON.stringify({ jsonrpc: "2.0", id: 4, result: "ok" });
  {
    const { b } = budgetAt(false);
    const { gate, lines } = gateWith(b, [4]);
    const passed = b.stats.passedBytes;
    assert.deepEqual(lines(late, answer, again), [late, answer, again]);
    assert.equal(b.stats.passedBytes, passed + late.length + 1 + again.length + 1);
    assert.equal(gate.chargedLines, 3); // $/ready, late, again
  }
  const { b } = budgetAt(true);
  const { gate, lines } = gateWith(b, [4]);
  assert.deepEqual(lines(late, answer, again), [answer]);
  assert.equal(gate.droppedOtherLines, 2);
});

Deno.test("LogGate: requests beyond what claimRequest allows at once are charged like other lines", () => {
  const { b } = budgetAt(true);
  const { gate, model, lines } = gateWith(b, [], 2);
  // Two are served (the model keeps them served); the third is another line: dropped.
  assert.deepEqual(lines(request(1), request(2), request(3)), [request(1), request(2)]);
  assert.equal(gate.droppedOtherLines, 1);
  model.serving.delete(1); // one answered: a slot again
  assert.deepEqual(lines(request(4)), [request(4)]);
  // The same id as one being served is not a new request: another line.
  assert.deepEqual(lines(request(2)), []);
});

Deno.test("LogGate.requestFailed charges a request answered with an error; while the budget is spent, requests are then dropped", () => {
  const { b, t } = budgetAt(true);
  const { gate, model } = gateWith(b);
  const seen: { passing: boolean; bytes: number }[] = [];
  const line = request(1);
  const forward = model.forward;
  const g = new LogGate(b, (bytes) => {
    forward(bytes);
    if (bytes.includes(0x0a)) seen.push({ passing: g.passingRequest, bytes: g.lineBytes });
  }, model.claims);
  g.push(enc.encode(READY + "\n"));
  g.push(enc.encode(line + "\n"));
  // While the decoder has it, the gate says it passes uncharged, and its size.
  assert.deepEqual(seen, [{ passing: false, bytes: READY.length + 1 }, {
    passing: true,
    bytes: line.length + 1,
  }]);
  const passed = b.stats.passedBytes;
  g.requestFailed(seen[1]!.bytes);
  assert.equal(b.stats.passedBytes, passed + line.length + 1);
  model.out.length = 0;
  g.push(enc.encode(request(2) + "\n"));
  assert.equal(model.out.length, 0, "dropped while the budget is spent");
  t.now += 10_000;
  g.push(enc.encode(request(3) + "\n"));
  assert.equal(dec.decode(model.out.at(-1)), request(3) + "\n");
  assert.equal(gate.falseRequests, 0);
});
