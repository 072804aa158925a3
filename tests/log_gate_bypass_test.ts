/**
 * The log gate with real plugin processes: lines in the form of the SDK's requests and
 * responses pass it outside the log budget only within bounds. A plugin that floods its stdout
 * with lines that start like requests (not JSON, a method the host lacks, a host service it may
 * not use, a service that succeeds with a padded line) or like responses to ids the host never
 * sent gets them charged to its request or log budget, and dropped unparsed once those are
 * spent; it keeps working. Before, each such line of up to 64 KiB was parsed free, without bound
 * (a review's probe: 20,000 lines, 13.5 s of the host's CPU). An honest plugin's burst of
 * requests is never dropped unanswered.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FIXTURE_PLUGINS, makeHome } from "./_helpers.ts";

const LINES = 2_000;
const LINE_BYTES = 60 * 1024;
/** The liar's request budget: 256 KiB/s, so a burst of 512 KiB (8 lines) passes on it. */
const REQUEST_BYTES_PER_S = 256 * 1024;

const PLUGIN = `
import { serve } from "plugsconc/sdk";
const enc = new TextEncoder();
/** About \`bytes\` bytes of nested arrays, as JSON. */
const body = (bytes) => "[" + "[{}],".repeat(Math.floor(bytes / 5)) + "0]";
const pad = body(${LINE_BYTES});
const req = (id, rest) => '{"jsonrpc":"2.0","id":' + id + ',' + rest;
const heads = {
  // The request form, not JSON: cut short at the end.
  garbage: (id) => req(id, '"method":"host/x","params":' + pad.slice(0, -1)),
  // A request of a method the host does not have (answered at once: METHOD_NOT_FOUND).
  unknown: (id) => req(id, '"method":"host/nope","params":' + pad + "}"),
  // A host service this plugin may not use (no capabilities.plugins): refused.
  refused: (id) => req(id, '"method":"host/plugins.call","params":{"plugin":"x","method":"y","params":' + pad + "}}"),
  // A service that succeeds for any plugin, padded with a key the peer ignores.
  padded: (id) => req(id, '"method":"host/process.list","pad":' + pad + "}"),
  // A response to an id the host never sent.
  late: (id) => '{"jsonrpc":"2.0","id":' + (1000000 + id) + ',"result":' + pad + "}",
};
let next = 1;
serve({
  transport: "stdio", // its flood goes to stdout: the protocol channel
  methods: {
    flood({ kind, lines }) {
      for (let i = 0; i < lines; i++) Deno.stdout.writeSync(enc.encode(heads[kind](next++) + "\\n"));
      return "done";
    },
    echo: (params) => params,
  },
});
`;

for (const kind of ["garbage", "unknown", "refused", "padded", "late"]) {
  Deno.test(`${LINES} stdout lines of 60 KiB like SDK requests or responses (${kind}) are charged and dropped; the plugin serves on`, async () => {
    await using home = await makeHome({
      watcher: { enabled: false },
      plugins: { liar: { log_budget: { request_bytes_per_s: REQUEST_BYTES_PER_S } } },
    });
    const dir = join(home.pluginsDir, "liar");
    await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dir, "main.ts"), PLUGIN);
    await Deno.writeTextFile(
      join(dir, "manifest.yaml"),
      "plugin:\n  name: liar\n  version: 1.0.0\n  entrypoint: ./main.ts\n" +
        "methods:\n  flood:\n    timeout_ms: 60000\n",
    );
    await using host = await home.startHost();
    const proc = host.supervisor("liar")!.process!;
    const budget = proc.logBudget;
    const before = { log: budget.stats, requests: budget.requests.stats };
    const garbage = proc.stdoutGarbage;
    const t0 = performance.now();
    assert.equal(await host.call("liar", "flood", { kind, lines: LINES }), "done");
    const seconds = (performance.now() - t0) / 1000;
    const dropped = budget.stats.dropped - before.log.dropped;
    const logKib = (budget.stats.passedBytes - before.log.passedBytes) / 1024;
    const requestKib = (budget.requests.stats.passedBytes - before.requests.passedBytes) / 1024;
    console.log(JSON.stringify({
      kind,
      dropped,
      log_kib: Math.round(logKib),
      request_kib: Math.round(requestKib),
      refused: budget.requests.stats.refused - before.requests.refused,
      seconds: Math.round(seconds * 100) / 100,
    }));
    // Nearly all were dropped unparsed: the budgets paid for the rest (1 MiB + 512 KiB/s of
    // log, 512 KiB + 256 KiB/s of requests, for the time the flood took; each budget lets a
    // line start while it holds any bytes, so one line more each).
    assert.ok(dropped >= LINES * 0.9, `${kind}: only ${dropped} of ${LINES} lines were dropped`);
    assert.ok(
      logKib + requestKib <= 1536 + 768 * seconds + 2 * 61,
      `${logKib} + ${requestKib} KiB`,
    );
    assert.ok(
      proc.stdoutGarbage - garbage <= LINES * 0.1,
      `${proc.stdoutGarbage - garbage} parsed`,
    );
    assert.deepEqual(await host.call("liar", "echo", { still: "here" }), { still: "here" });
    assert.equal(host.plugins()[0]!.restarts, 0);
  });
}

Deno.test("an honest plugin's burst of 1,000 calls to another plugin all settle, none dropped unanswered", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "caller_a"));
  await home.addPlugin(join(FIXTURE_PLUGINS, "callee_b"));
  const dir = join(home.pluginsDir, "burst");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(
    join(dir, "main.ts"),
    `import { serve } from "plugsconc/sdk";
serve({
  methods: {
    async burst({ n }, ctx) {
      const pad = "p".repeat(8000);
      const outcomes = await Promise.allSettled(
        Array.from({ length: n }, (_, i) => ctx.host.plugins.call("b-callee", "echo", { i, pad })),
      );
      const codes = {};
      for (const o of outcomes) {
        const k = o.status === "fulfilled" ? "ok" : String(o.reason?.code ?? o.reason);
        codes[k] = (codes[k] ?? 0) + 1;
      }
      return codes;
    },
  },
});
`,
  );
  await Deno.writeTextFile(
    join(dir, "manifest.yaml"),
    "plugin:\n  name: burst\n  version: 1.0.0\n  entrypoint: ./main.ts\n" +
      "capabilities:\n  plugins:\n    - { name: b-callee, methods: [echo] }\n" +
      "methods:\n  burst:\n    timeout_ms: 30000\n",
  );
  await using host = await home.startHost();
  const codes = await host.call("burst", "burst", { n: 1000 }) as Record<string, number>;
  console.log(JSON.stringify(codes));
  const total = Object.values(codes).reduce((a, b) => a + b, 0);
  assert.equal(total, 1000);
  assert.ok((codes.ok ?? 0) >= 64, JSON.stringify(codes));
  // Only the host's own limits refuse: nothing was dropped by the log gate.
  assert.deepEqual(
    Object.keys(codes).filter((k) => k !== "ok" && k !== "PLUGIN_CALL_LIMIT"),
    [],
    JSON.stringify(codes),
  );
  assert.equal(host.supervisor("burst")!.process!.logBudget.requests.stats.refused, 0);
});
