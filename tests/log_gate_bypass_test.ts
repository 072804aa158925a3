/**
 * The log gate with real plugin processes: lines in the form of the SDK's requests and
 * responses pass it uncharged only when they are what they look like. A plugin that floods its
 * stdout with lines that start like requests (not JSON, a method the host lacks, a host service
 * it may not use) or like responses to ids the host never sent gets them charged to its log
 * budget, and dropped unparsed once that is spent; it keeps working. Before, each such line of
 * up to 64 KiB was parsed free, without bound (a review's probe: 20,000 lines, 13.5 s of the
 * host's CPU).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeHome } from "./_helpers.ts";

const LINES = 2_000;
const LINE_BYTES = 60 * 1024;

const PLUGIN = `
import { serve } from "plugsconc/sdk";
const enc = new TextEncoder();
/** About \`bytes\` bytes of nested arrays, as JSON. */
const body = (bytes) => "[" + "[{}],".repeat(Math.floor(bytes / 5)) + "0]";
const heads = {
  // The request form, not JSON: cut short at the end.
  garbage: (id) => '{"jsonrpc":"2.0","id":' + id + ',"method":"host/x","params":' + body(${LINE_BYTES}).slice(0, -1),
  // A request of a method the host does not have (answered at once: METHOD_NOT_FOUND).
  unknown: (id) => '{"jsonrpc":"2.0","id":' + id + ',"method":"host/nope","params":' + body(${LINE_BYTES}) + "}",
  // A host service this plugin may not use (no capabilities.plugins): refused.
  refused: (id) => '{"jsonrpc":"2.0","id":' + id + ',"method":"host/plugins.call","params":{"plugin":"x","method":"y","params":' + body(${LINE_BYTES}) + "}}",
  // A response to an id the host never sent.
  late: (id) => '{"jsonrpc":"2.0","id":' + (1000000 + id) + ',"result":' + body(${LINE_BYTES}) + "}",
};
let next = 1;
serve({
  methods: {
    flood({ kind, lines }) {
      for (let i = 0; i < lines; i++) Deno.stdout.writeSync(enc.encode(heads[kind](next++) + "\\n"));
      return "done";
    },
    echo: (params) => params,
  },
});
`;

for (const kind of ["garbage", "unknown", "refused", "late"]) {
  Deno.test(`${LINES} stdout lines of 60 KiB like SDK requests or responses (${kind}) are charged and dropped; the plugin serves on`, async () => {
    await using home = await makeHome({ watcher: { enabled: false } });
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
    const before = { ...proc.logBudget.stats };
    const garbage = proc.stdoutGarbage;
    assert.equal(await host.call("liar", "flood", { kind, lines: LINES }), "done");
    const after = proc.logBudget.stats;
    const dropped = after.dropped - before.dropped;
    const passed = after.passedBytes - before.passedBytes;
    console.log(JSON.stringify({ kind, dropped, passed_kib: Math.round(passed / 1024) }));
    // Nearly all were dropped unparsed: the budget (512 KiB/s, 1 MiB burst) paid for the rest.
    assert.ok(dropped >= LINES * 0.9, `${kind}: only ${dropped} of ${LINES} lines were dropped`);
    assert.ok(
      proc.stdoutGarbage - garbage <= LINES * 0.1,
      `${proc.stdoutGarbage - garbage} parsed`,
    );
    assert.deepEqual(await host.call("liar", "echo", { still: "here" }), { still: "here" });
    assert.equal(host.plugins()[0]!.restarts, 0);
  });
}
