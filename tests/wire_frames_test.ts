/**
 * Issue 11, length-prefixed frames with real plugin processes: an SDK plugin announces `lp1` in
 * `$/ready` and the host sends it frames, payloads of every size included; a plugin that only
 * speaks NDJSON (written before frames) keeps getting lines; and an SDK plugin refuses a frame
 * over its limit from the header, without holding it, and keeps serving.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { encodeFrame, encodeMessage } from "../src/rpc/mod.ts";
import { BENCH_PLUGIN_SOURCE } from "../scripts/bench/_common.ts";
import { FIXTURE_PLUGINS, makeHome } from "./_helpers.ts";

const MIB = 1024 * 1024;

Deno.test("an SDK plugin that announces lp1 is sent frames, and calls of 100 B to 4 MiB work", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(BENCH_PLUGIN_SOURCE);
  await using host = await home.startHost();
  const proc = host.supervisor("bench")!.process!;
  assert.equal(proc.framed, true);
  for (const bytes of [100, 64 * 1024, 64 * 1024 + 1, 4 * MIB]) {
    const params = { text: "é".repeat(bytes / 4) + "x".repeat(bytes / 2) };
    assert.deepEqual(await host.call("bench", "echo", params), params, `${bytes} bytes`);
  }
  const big = { text: "y".repeat(64 * 1024) };
  const many = await Promise.all(Array.from({ length: 64 }, () => host.call("bench", "echo", big)));
  assert.ok(many.every((r) => (r as { text: string }).text === big.text));
  assert.equal(proc.stdoutGarbage, 0);
});

Deno.test("a plugin that speaks only NDJSON gets lines, never frames, and its calls work", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "wire_ndjson"));
  await using host = await home.startHost();
  const proc = host.supervisor("wire-ndjson")!.process!;
  assert.equal(proc.framed, false);
  for (const bytes of [10, 64 * 1024, MIB]) {
    const params = { text: "z".repeat(bytes) };
    assert.deepEqual(await host.call("wire-ndjson", "echo", params), params);
  }
  const burst = await Promise.all(
    Array.from({ length: 100 }, (_, i) => host.call("wire-ndjson", "echo", [i])),
  );
  assert.deepEqual(burst, Array.from({ length: 100 }, (_, i) => [i]));
  assert.equal(await host.call("wire-ndjson", "notJson"), 0);
});

Deno.test("an SDK plugin refuses a frame over its limit without holding it, then answers the next", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(BENCH_PLUGIN_SOURCE);
  await using host = await home.startHost();
  // The bench plugin's own argv and env, spawned here so the test writes its stdin directly.
  const compiled = host.sandbox("bench")!;
  const child = new Deno.Command(Deno.execPath(), {
    args: [...compiled.argv],
    env: { ...compiled.env },
    clearEnv: true,
    cwd: compiled.plugin.dir,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  const reader = child.stdout.getReader();
  let text = "";
  const nextLine = async () => {
    for (;;) {
      const i = text.indexOf("\n");
      if (i >= 0) {
        const line = text.slice(0, i);
        text = text.slice(i + 1);
        return JSON.parse(line);
      }
      const { value, done } = await reader.read();
      if (done) throw new Error("the plugin closed stdout");
      text += new TextDecoder().decode(value);
    }
  };
  try {
    const ready = await nextLine();
    assert.equal(ready.method, "$/ready");
    assert.deepEqual(ready.params.framing, ["lp1"]);
    const hwm = () =>
      Number(/^VmHWM:\s+(\d+) kB$/m.exec(Deno.readTextFileSync(`/proc/${child.pid}/status`))![1]) *
      1024;
    await writer.write(encodeFrame({ jsonrpc: "2.0", id: 1, method: "echo", params: [1] }));
    assert.deepEqual((await nextLine()).result, [1]);
    const before = hwm();
    // The SDK's limit is 64 MiB: a frame one byte over it, sent in full, is skipped by count.
    const limit = 64 * MIB;
    await writer.write(new TextEncoder().encode(`@${(limit + 1).toString(16).padStart(8, "0")}`));
    const junk = new Uint8Array(MIB).fill(0x78);
    for (let sent = 0; sent < limit + 1; sent += junk.length) {
      await writer.write(junk.subarray(0, Math.min(junk.length, limit + 1 - sent)));
    }
    await writer.write(Uint8Array.of(0x0a));
    // Both framings still work after it.
    await writer.write(encodeMessage({ jsonrpc: "2.0", id: 2, method: "echo", params: [2] }));
    await writer.write(encodeFrame({ jsonrpc: "2.0", id: 3, method: "echo", params: [3] }));
    assert.deepEqual([(await nextLine()).id, (await nextLine()).id], [2, 3]);
    // Holding the frame would have cost at least 64 MiB more.
    const grew = hwm() - before;
    assert.ok(grew < 32 * MIB, `the plugin's peak RSS grew by ${Math.round(grew / MIB)} MiB`);
  } finally {
    await writer.close().catch(() => {});
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await child.status;
  }
});
