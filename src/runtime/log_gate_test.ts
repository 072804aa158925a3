import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { LogBudget, type LogBudgetClock } from "./log_budget.ts";
import { LogGate } from "./log_gate.ts";
import { decoderModel } from "./_testing.ts";

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
/** Lines of every kind; the first (`$/ready`) always passes. */
const LINES = [
  READY,
  log(1),
  JSON.stringify({ jsonrpc: "2.0", id: 1, result: "$/log" }), // SDK response, pending: passes
  log(2, 300),
  '{"jsonrpc":"2.0","method":"$/lo"}', // shares most of the log prefix: other
  "", // an empty line: other
  '{"method":"$/log","jsonrpc":"2.0","params":{}}', // another key order: other
  '{"jsonrpc":"2.0","method":"$/log","params"', // the prefix, cut short, then the line ends
  JSON.stringify({ jsonrpc: "2.0", id: 4, method: "host/kv.get", params: {} }), // served: passes
  JSON.stringify({ jsonrpc: "2.0", id: "x", method: "host/kv.get", params: {} }), // string id: other
  '{"jsonrpc":"2.0","id":01,"result":1}', // a leading zero: other
  '{"jsonrpc":"2.0","id":12345678901234567,"result":1}', // 17 digits: other
  '{"jsonrpc":"2.0","id":-,"result":1}', // no digits: other
  '{"jsonrpc":"2.0","id":5}', // no comma after the id: other
  '{"jsonrpc":"2.0","id":-6,"resul', // the request form, not one: passes on the request budget
  '{"jsonrpc":"2.0","id":1234567890123456,"error":{}}', // 16 digits, not pending: other
  '{"jsonrpc":"2.0","i', // the id prefix, cut short: other
  '{"id":2,"jsonrpc":"2.0","result":1}', // a response in another key order: other
  log(3),
  JSON.stringify({ jsonrpc: "2.0", id: 3, error: { code: 1, message: "no" } }), // pending: passes
  "x".repeat(100), // garbage: other
];
const INPUT = enc.encode(LINES.join("\n") + "\n" + log(4, 50)); // the last line is unfinished
/** The ids of LINES' responses the host waits for. */
const PENDING = [1, 3];
/** LINES not charged to the log budget: responses to pending ids, and lines in the request form. */
const FREE = [LINES[2], LINES[8], LINES[14], LINES[19]];
/** A line in the request form that is none: charged to the request budget all the same. */
const FALSE_REQUEST = LINES[14]!;
const isOther = (l: string) => !l.startsWith(LOG_PREFIX) && !FREE.includes(l);
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
    const b = freshBudget();
    const model = decoderModel(PENDING);
    const gate = new LogGate(b, model.forward, model.claims);
    const got = run(gate, INPUT, [cut, Math.min(INPUT.length, cut + 7)], model.out);
    assert.equal(got, dec.decode(INPUT));
    assert.equal(gate.droppedLines, 0);
    const requestBytes = LINES[8]!.length + 1 + FALSE_REQUEST.length + 1;
    assert.equal(model.claims.requests!.stats.passedBytes, requestBytes);
    // `$/ready` and the other lines, charged with their length and newline; nothing else.
    assert.equal(gate.chargedLines, OTHERS.length + 1);
    const charged = [READY, ...OTHERS].reduce((n, l) => n + l.length + 1, 0);
    assert.equal(b.stats.passedBytes, charged);
  }
});

Deno.test("LogGate, budget spent: drops $/log and other lines whole, passes SDK responses and served requests and the first line, whatever the chunks", () => {
  const kept = LINES.filter((l, i) => i === 0 || FREE.includes(l)).map((l) => l + "\n").join("");
  const dropped = OTHERS;
  for (const cuts of splits(INPUT)) {
    const b = budget(true);
    const model = decoderModel(PENDING);
    const gate = new LogGate(b, model.forward, model.claims);
    assert.equal(run(gate, INPUT, cuts, model.out), kept, `cuts ${cuts.slice(0, 3)}`);
    // The last $/log line is unfinished: still being dropped.
    assert.equal(gate.droppedLines, LOGS.length + dropped.length);
    assert.equal(gate.droppedOtherLines, dropped.length);
    assert.equal(b.stats.passedBytes, READY.length + 1);
    const droppedBytes = [...LOGS, ...dropped].reduce((n, l) => n + l.length + 1, 0);
    assert.equal(b.stats.droppedBytes, droppedBytes);
    assert.equal(b.dropped, LOGS.length + dropped.length);
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
  const { out, forward, claims } = decoderModel([7]);
  const gate = new LogGate(b, forward, claims);
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
    const { out, forward, claims } = decoderModel([7]);
    const gate = new LogGate(b, forward, claims);
    const got = run(gate, input, cuts, out);
    const expected = READY + "\n" + long.slice(0, allowance) + "\n" + response + "\n";
    assert.equal(got.length, expected.length, `cuts ${cuts}`);
    assert.equal(got, expected);
    assert.equal(gate.cutLines, 1);
    assert.equal(b.stats.droppedBytes, long.length + 1 - allowance);
  }
});

/** Cuts near each of `points`: one cut and two adjacent cuts at each position within `radius`. */
function splitsNear(input: Uint8Array, points: number[], radius: number): number[][] {
  const all: number[][] = [[]];
  for (const p of points) {
    for (let a = Math.max(0, p - radius); a <= Math.min(input.length, p + radius); a++) {
      all.push([a], [a, Math.min(input.length, a + 1)]);
    }
  }
  return all;
}

/** A JSON line in the id form of `bytes` bytes (without its newline), nested like the review's. */
function idLine(head: string, bytes: number): string {
  const start = head + "[";
  const n = Math.floor((bytes - start.length - 4) / 5);
  const pad = bytes - start.length - 5 * n - 4;
  return start + "[{}],".repeat(n) + '"' + "x".repeat(pad) + '"]}';
}

/** A budget that holds 1000 bytes (or none: `spent`), and takes records unless `spent`. */
function smallBudget(spent: boolean): LogBudget {
  const b = new LogBudget("p", {
    recordsPerS: 1000,
    bytesPerS: 1000,
    maxRecordBytes: 100,
    clock,
    logger: quiet,
  });
  if (spent) { while (b.take()); }
  return b;
}

const KIB = 1024;

Deno.test("LogGate passes a response to a pending id whole and uncharged, whatever its size and the chunks", () => {
  const response = idLine('{"jsonrpc":"2.0","id":42,"result":', 1 << 20);
  const error = idLine('{"jsonrpc":"2.0","id":-7,"error":', 100 * KIB);
  const request = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "host/process.exec" });
  const input = enc.encode([READY, response, error, request, ""].join("\n"));
  const r = READY.length + 1;
  const e = r + response.length + 1;
  const asked: number[] = [];
  for (const spent of [true, false]) {
    for (const cuts of splitsNear(input, [r + 20, r + 64 * KIB, e + 20, e + 64 * KIB], 24)) {
      const b = smallBudget(spent);
      const model = decoderModel([42, -7], asked);
      const gate = new LogGate(b, model.forward, model.claims);
      const got = run(gate, input, cuts, model.out);
      assert.ok(got === dec.decode(input), `spent ${spent} cuts ${cuts}: ${got.length}`);
      assert.equal(gate.cutLines, 0);
      assert.equal(gate.droppedLines, 0);
      assert.equal(gate.chargedLines, 1); // $/ready
      assert.equal(b.stats.passedBytes, READY.length + 1);
    }
  }
  assert.deepEqual([...new Set(asked)].sort(), [-7, 42]); // requests are not asked about
});

Deno.test("LogGate charges, cuts and drops a response to an id not pending, and a request past 64 KiB", () => {
  const heads = [
    '{"jsonrpc":"2.0","id":42,"result":', // not pending
    '{"jsonrpc":"2.0","id":7,"error":', // not pending (7 is a request of the plugin's, below)
    '{"jsonrpc":"2.0","id":7,"method":"host/x","params":', // a request, too long to pass free
  ];
  for (const head of heads) {
    const request = head.includes('"method"');
    const long = idLine(head, 200 * KIB);
    const short = JSON.stringify({ jsonrpc: "2.0", id: 3, method: "host/process.exec" });
    const input = enc.encode([READY, long, short, ""].join("\n"));
    const l = READY.length + 1;
    for (const cuts of splitsNear(input, [l + 20, l + 64 * KIB, l + long.length], 8)) {
      // The budget holds 1000 bytes (spent or not). A response not pending is another line: cut
      // at 64 KiB (the least allowance) while the budget is ready, else dropped. A request passes
      // on the request budget up to 64 KiB whatever the log budget, and is then cut and charged
      // to both; the next (short) request passes on the request budget.
      for (const spent of [true, false]) {
        const b = smallBudget(spent);
        const { out, forward, claims } = decoderModel([]);
        const gate = new LogGate(b, forward, claims);
        const got = run(gate, input, cuts, out);
        const cut = request || !spent;
        const expected = READY + "\n" + (cut ? long.slice(0, 64 * KIB) + "\n" : "") + short +
          "\n";
        assert.ok(got === expected, `${head} spent ${spent} cuts ${cuts}: ${got.length}`);
        assert.equal(gate.cutLines, cut ? 1 : 0);
        assert.equal(gate.droppedLines, 1);
        assert.equal(b.stats.passedBytes, READY.length + 1 + (cut ? 64 * KIB : 0)); // short: free
        assert.equal(b.stats.droppedBytes, long.length + 1 - (cut ? 64 * KIB : 0));
        const requestBytes = (request ? 64 * KIB : 0) + short.length + 1;
        assert.equal(claims.requests!.stats.passedBytes, requestBytes);
      }
      // A budget that holds 1 MiB takes it whole, charged; the short request passes free.
      const b = freshBudget();
      const { out, forward, claims } = decoderModel([]);
      const gate = new LogGate(b, forward, claims);
      assert.ok(run(gate, input, cuts, out) === dec.decode(input), `${head} cuts ${cuts}`);
      assert.equal(gate.cutLines, 0);
      assert.equal(gate.chargedLines, 2);
      assert.equal(b.stats.passedBytes, READY.length + 1 + long.length + 1);
    }
  }
});

Deno.test("LogGate passes requests on the request budget while the log budget is spent, and no late response", () => {
  const exact = idLine('{"jsonrpc":"2.0","id":9,"method":"host/x","params":', 64 * KIB - 1);
  const over = idLine('{"jsonrpc":"2.0","id":10,"method":"host/x","params":', 64 * KIB);
  const lines = [
    READY,
    JSON.stringify({ jsonrpc: "2.0", id: 1, method: "host/process.exec", params: { cmd: "x" } }),
    JSON.stringify({ jsonrpc: "2.0", id: 2, result: "late" }), // an id not pending: dropped
    exact, // 64 KiB with its newline
    log(1),
    over, // one byte more: cut
    JSON.stringify({ jsonrpc: "2.0", id: 3, method: "host/kv.get", params: {} }),
  ];
  const input = enc.encode(lines.join("\n") + "\n");
  const o = lines.slice(0, 5).join("\n").length + 1;
  for (const cuts of splitsNear(input, [READY.length + 30, o - 1, o + 64 * KIB], 30)) {
    const b = budget(true);
    const { out, forward, claims } = decoderModel([]);
    const gate = new LogGate(b, forward, claims);
    const expected = [READY, lines[1], exact, over.slice(0, 64 * KIB), lines[6], ""].join("\n");
    assert.ok(run(gate, input, cuts, out) === expected, `cuts ${cuts}`);
    assert.equal(gate.droppedLines, 3); // the late response, the $/log line, the cut one
    assert.equal(gate.cutLines, 1);
  }
});

Deno.test("LogGate holds back at most a few dozen bytes of a line start", () => {
  const lines = [
    READY,
    '{"jsonrpc":"2.0","id":-1234567890123456,"error":{"code":1,"message":"x"}}',
    '{"jsonrpc":"2.0","id":-1234567890123456,"result":' + "1".repeat(200) + "}",
    log(1, 200),
  ];
  const input = enc.encode(lines.join("\n") + "\n");
  const out: Uint8Array[] = [];
  const gate = new LogGate(freshBudget(), (bytes) => out.push(bytes.slice()), {
    isPending: () => true,
  });
  let forwarded = 0;
  let most = 0;
  for (let i = 0; i < input.length; i++) {
    gate.push(input.subarray(i, i + 1));
    forwarded = out.reduce((n, x) => n + x.length, 0);
    most = Math.max(most, i + 1 - forwarded);
  }
  assert.equal(forwarded, input.length);
  // The id prefix, `-`, 16 digits, the comma and `"result"` (its `:` decides, and is forwarded).
  assert.equal(most, 48);
});

Deno.test("LogGate.end forwards a line start it still holds, so the decoder reports it truncated", () => {
  for (
    const tail of [
      '{"jsonrpc":"2.0","id":',
      '{"jsonrpc":"2.0","id":12,"res',
      '{"jsonrpc":"2.0","me',
    ]
  ) {
    const input = enc.encode(READY + "\n" + tail);
    for (const cuts of splits(input)) {
      const out: Uint8Array[] = [];
      const gate = new LogGate(budget(true), (bytes) => out.push(bytes.slice()), {
        isPending: () => true,
      });
      run(gate, input, cuts, out);
      gate.end();
      assert.equal(out.map((x) => dec.decode(x)).join(""), READY + "\n" + tail, `cuts ${cuts}`);
    }
  }
});
