/**
 * Issue 11, the Unix-socket transport with real plugin processes: an SDK plugin connects to the
 * socket the host made for its process and the protocol runs over it; the plugin is granted
 * that one path and nothing near it (it can neither replace the socket nor write beside it,
 * as root too); the log gate and the line limit hold on the socket as on stdout; stdout is text
 * from then on; and `transport: stdio` (host or plugin) keeps the pipes.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { BENCH_PLUGIN_SOURCE } from "../scripts/bench/_common.ts";
import { PluginProtocolError } from "../src/runtime/mod.ts";
import { captureLogs, makeHome, type TestHome, waitFor } from "./_helpers.ts";

const MIB = 1024 * 1024;

/** Writes a plugin folder `name` with `code` as its entrypoint. */
async function writePlugin(home: TestHome, name: string, code: string, manifest = "") {
  const dir = join(home.pluginsDir, name);
  await Deno.mkdir(dir);
  await Deno.writeTextFile(join(dir, "main.ts"), code);
  await Deno.writeTextFile(
    join(dir, "manifest.yaml"),
    `plugin:\n  name: ${name}\n  version: 1.0.0\n  entrypoint: ./main.ts\n${manifest}`,
  );
}

/** The argv of a running process, from /proc. */
function cmdline(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").slice(0, -1);
}

const flag = (argv: string[], name: string) =>
  argv.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1).split(",") ?? [];

Deno.test({
  name: "an SDK plugin runs the protocol over its own socket: calls of 100 B to 4 MiB, 64 at once",
  ignore: Deno.build.os === "windows",
  async fn() {
    await using home = await makeHome({ watcher: { enabled: false } });
    await home.addPlugin(BENCH_PLUGIN_SOURCE);
    await using host = await home.startHost();
    const proc = host.supervisor("bench")!.process!;
    assert.equal(proc.transport, "unix");
    assert.equal(proc.framed, true);
    for (const bytes of [100, 64 * 1024, 4 * MIB]) {
      const params = { text: "é".repeat(bytes / 4) + "x".repeat(bytes / 2) };
      assert.deepEqual(await host.call("bench", "echo", params), params, `${bytes} bytes`);
    }
    const many = await Promise.all(
      Array.from({ length: 64 }, (_, i) => host.call("bench", "echo", { i })),
    );
    assert.deepEqual(many, Array.from({ length: 64 }, (_, i) => ({ i })));
    assert.equal(proc.stdoutGarbage, 0);
  },
});

const PROBE = `
import { serve } from "plugsconc/sdk";
const path = Deno.env.get("PLUGSCONC_SOCKET");
const dir = path.slice(0, path.lastIndexOf("/"));
const attempt = async (f) => { try { await f(); return "done"; } catch (e) { return e.name; } };
serve({
  methods: {
    async probe() {
      const q = async (d) => (await Deno.permissions.query(d)).state;
      return {
        path,
        socket: { read: await q({ name: "read", path }), write: await q({ name: "write", path }) },
        beside: await q({ name: "write", path: dir + "/x" }),
        folder: await q({ name: "read", path: dir }),
        otherUnix: await q({ name: "net", host: "unix:" + dir + "/y" }),
        // Queried only, never connected to.
        metadata: await q({ name: "net", host: "169.254.169.254:80" }),
        remove: await attempt(() => Deno.remove(path)),
        writeOver: await attempt(() => Deno.writeTextFile(path, "x")),
        writeBeside: await attempt(() => Deno.writeTextFile(dir + "/x", "x")),
        secondConnection: await attempt(async () => (await Deno.connect({ transport: "unix", path })).close()),
      };
    },
    print() {
      Deno.stdout.writeSync(new TextEncoder().encode("plain text on stdout\\n"));
      return "printed";
    },
    huge: ({ mb }) => "x".repeat(mb * 1024 * 1024),
  },
});
`;

Deno.test({
  name:
    "the plugin is granted its socket's path only: it cannot replace the socket, write beside it or connect again",
  ignore: Deno.build.os === "windows",
  async fn() {
    await using home = await makeHome({ watcher: { enabled: false } });
    await writePlugin(home, "probe", PROBE);
    await using host = await home.startHost();
    const proc = host.supervisor("probe")!.process!;
    assert.equal(proc.transport, "unix");
    const got = await host.call("probe", "probe") as Record<string, unknown> & { path: string };
    const path = got.path;
    assert.deepEqual({ ...got, path: undefined }, {
      path: undefined,
      socket: { read: "granted", write: "granted" },
      beside: "prompt",
      folder: "prompt",
      otherUnix: "prompt",
      metadata: "denied", // --deny-net
      // The host accepted one connection and stopped listening, which removed the socket; the
      // folder is read-only (as root too: the capabilities that ignore modes are dropped), so
      // nothing can be made at the granted path.
      remove: "NotFound",
      writeOver: "PermissionDenied",
      writeBeside: "NotCapable",
      secondConnection: "NotFound",
    });
    // Exactly that path was added to the flags, and the folder is read-only, the socket 0600.
    const argv = cmdline(proc.pid);
    assert.ok(flag(argv, "--allow-read").includes(path), argv.join(" "));
    assert.ok(flag(argv, "--allow-write").includes(path), argv.join(" "));
    assert.deepEqual(flag(argv, "--allow-net"), [`unix:${path}`]);
    assert.ok(flag(argv, "--allow-env").includes("PLUGSCONC_SOCKET"));
    assert.equal(Deno.statSync(dirname(path)).mode! & 0o777, 0o500);
    assert.deepEqual([...Deno.readDirSync(dirname(path))], []);
    if (Deno.uid() === 0) {
      // As root, without CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2) and CAP_FOWNER (3).
      const status = Deno.readTextFileSync(`/proc/${proc.pid}/status`);
      for (const set of ["CapEff", "CapBnd"]) {
        const hex = new RegExp(`^${set}:\\s+([0-9a-f]+)$`, "m").exec(status)?.[1];
        assert.ok(hex !== undefined, status);
        assert.equal(BigInt(`0x${hex}`) & 0b1110n, 0n, `${set} ${hex}`);
      }
    }
    // Stopped: the folder is gone.
    await host.stop();
    assert.ok(
      await waitFor(() => {
        try {
          Deno.statSync(dirname(path));
          return false;
        } catch {
          return true;
        }
      }, 5000),
    );
  },
});

Deno.test({
  name: "over the socket, stdout is text that is logged, and a line over max_line_bytes is refused",
  ignore: Deno.build.os === "windows",
  async fn() {
    await using logs = await captureLogs();
    await using home = await makeHome({
      watcher: { enabled: false },
      defaults: { restart: { initial_backoff_ms: 50 } },
    });
    await writePlugin(home, "probe", PROBE);
    await using host = await home.startHost();
    const proc = host.supervisor("probe")!.process!;
    assert.equal(await host.call("probe", "print"), "printed");
    assert.ok(
      await waitFor(
        () => logs.records.some((r) => r.message.join("").includes("plain text on")),
        5000,
      ),
    );
    assert.equal(proc.stdoutGarbage, 0);
    const error = await host.call("probe", "huge", { mb: 20 }, { timeoutMs: 30_000 }).then(
      () => assert.fail("a 20 MiB line was accepted"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof PluginProtocolError, `got ${error}`);
    assert.match(error.message, /max_line_bytes \(16777216 bytes\)/);
  },
});

Deno.test("transport: stdio (the host's, or the plugin's) keeps the pipes; no socket is offered or left", async () => {
  await using home = await makeHome({
    watcher: { enabled: false },
    defaults: { transport: "stdio" },
  });
  await home.addPlugin(BENCH_PLUGIN_SOURCE);
  await using host = await home.startHost();
  const proc = host.supervisor("bench")!.process!;
  assert.equal(proc.transport, "stdio");
  const argv = cmdline(proc.pid);
  assert.equal(flag(argv, "--allow-net").length, 0, argv.join(" "));
  assert.ok(!flag(argv, "--allow-env").includes("PLUGSCONC_SOCKET"));
  assert.deepEqual(await host.call("bench", "echo", { a: 1 }), { a: 1 });

  await using home2 = await makeHome({ watcher: { enabled: false } });
  await writePlugin(
    home2,
    "piped",
    `import { serve } from "plugsconc/sdk";
serve({ transport: "stdio", methods: { where: () => Deno.env.get("PLUGSCONC_SOCKET") } });
`,
  );
  await using host2 = await home2.startHost();
  const piped = host2.supervisor("piped")!.process!;
  assert.equal(piped.transport, "stdio");
  const path = await host2.call("piped", "where") as string;
  // Offered, not taken: the host removed it once $/ready came over stdout.
  assert.ok(
    await waitFor(() => {
      try {
        Deno.statSync(dirname(path));
        return false;
      } catch {
        return true;
      }
    }, 5000),
    `${dirname(path)} is still there`,
  );
});

/** A plugin without the SDK: it speaks the protocol over its socket by hand. */
const RAW = `
const enc = new TextEncoder();
const dec = new TextDecoder();
const conn = await Deno.connect({ transport: "unix", path: Deno.env.get("PLUGSCONC_SOCKET") });
const write = async (text) => {
  const bytes = enc.encode(text);
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
};
const pad = "[" + "[{}],".repeat(12_000) + "0]";
await write(JSON.stringify({ jsonrpc: "2.0", method: "$/ready", params: {
  protocol: 1, methods: ["flood", "echo"], transport: "unix1" } }) + "\\n");
let buf = "";
const chunk = new Uint8Array(65536);
for (;;) {
  const n = await conn.read(chunk);
  if (n === null) break;
  buf += dec.decode(chunk.subarray(0, n));
  for (let lf = buf.indexOf("\\n"); lf >= 0; lf = buf.indexOf("\\n")) {
    const m = JSON.parse(buf.slice(0, lf));
    buf = buf.slice(lf + 1);
    if (m.method === "flood") {
      // Lines in the request form that are not JSON: charged, then dropped unparsed.
      const lines = [];
      for (let i = 0; i < m.params.lines; i++) {
        lines.push('{"jsonrpc":"2.0","id":' + (i + 1) + ',"method":"host/x","params":' + pad);
      }
      await write(lines.join("\\n") + "\\n");
    }
    if (m.id !== undefined) await write(JSON.stringify({ jsonrpc: "2.0", id: m.id, result: m.params ?? "done" }) + "\\n");
  }
}
`;

Deno.test({
  name: "the log gate reads the socket as it reads stdout: a flood of false requests is dropped",
  ignore: Deno.build.os === "windows",
  async fn() {
    await using home = await makeHome({
      watcher: { enabled: false },
      plugins: { raw: { log_budget: { request_bytes_per_s: 256 * 1024 } } },
    });
    await writePlugin(home, "raw", RAW, "methods:\n  flood: { timeout_ms: 60000 }\n  echo: {}\n");
    await using host = await home.startHost();
    const proc = host.supervisor("raw")!.process!;
    assert.equal(proc.transport, "unix");
    const before = proc.logBudget.stats.dropped;
    assert.deepEqual(await host.call("raw", "flood", { lines: 2000 }), { lines: 2000 });
    const dropped = proc.logBudget.stats.dropped - before;
    assert.ok(dropped >= 1800, `only ${dropped} of 2000 false requests were dropped`);
    assert.ok(proc.stdoutGarbage <= 200, `${proc.stdoutGarbage} were parsed`);
    assert.deepEqual(await host.call("raw", "echo", { still: "here" }), { still: "here" });
  },
});
