import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { loadManifest, type PluginDescriptor } from "../manifest/mod.ts";
import { WorkerPool } from "../pool/mod.ts";
import { checkModuleGraph } from "../sandbox/mod.ts";
import {
  assertVerified,
  checksumFilePath,
  checksumPlugin,
  combineFileDigests,
  digestPlugin,
  HASH_CHUNK_BYTES,
  hashFile,
  IntegrityError,
  parseChecksumFile,
  readChecksumFile,
  verifyPlugin,
  writeChecksumFile,
} from "./mod.ts";

interface Home extends AsyncDisposable {
  readonly root: string;
  write(rel: string, data: string | Uint8Array): Promise<string>;
  /** A plugin folder `plugins/<name>` with a manifest and files, loaded. */
  plugin(
    name: string,
    files: Record<string, string>,
    manifest?: Record<string, unknown>,
  ): Promise<PluginDescriptor>;
}

async function makeHome(): Promise<Home> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-integrity-" }));
  const write = async (rel: string, data: string | Uint8Array) => {
    const path = join(root, rel);
    await Deno.mkdir(dirname(path), { recursive: true });
    if (typeof data === "string") await Deno.writeTextFile(path, data);
    else await Deno.writeFile(path, data);
    return path;
  };
  return {
    root,
    write,
    async plugin(name, files, manifest = {}) {
      const full = { plugin: { name, version: "1.0.0", entrypoint: "./main.ts" }, ...manifest };
      await write(`plugins/${name}/manifest.yaml`, JSON.stringify(full));
      for (const [rel, text] of Object.entries(files)) await write(`plugins/${name}/${rel}`, text);
      return await loadManifest(join(root, "plugins", name));
    },
    [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }),
  };
}

/** Runs a shell pipeline in `cwd` and returns its stdout, trimmed. */
async function sh(cwd: string, script: string): Promise<string> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    cwd,
    env: { LC_ALL: "C" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

function files(plugin: PluginDescriptor, rels: string[]): string[] {
  return rels.map((r) => join(plugin.dir, r)).sort();
}

const CAT_FILES = {
  "main.ts": 'import { util } from "./lib/util.ts";\nconsole.log(util);\n',
  "lib/util.ts": "export const util = 1;\n",
};

Deno.test("hashFile() matches sha256sum, for a file larger than one chunk and an empty one", async () => {
  await using home = await makeHome();
  const big = crypto.getRandomValues(new Uint8Array(65536));
  const data = new Uint8Array(HASH_CHUNK_BYTES * 3 + 12345);
  for (let i = 0; i < data.length; i += big.length) data.set(big.subarray(0, data.length - i), i);
  const path = await home.write("big.bin", data);
  const empty = await home.write("empty", "");
  const expected = (await sh(home.root, "sha256sum big.bin empty")).split("\n").map((l) =>
    l.split(" ")[0]
  );
  assert.deepEqual(await hashFile({ path }), { sha256: expected[0], size: data.length });
  assert.deepEqual(await hashFile({ path: empty }), { sha256: expected[1], size: 0 });
  // As a pool job, in a worker.
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const result = await pool.run({
    module: new URL("./hash_job.ts", import.meta.url),
    fn: "hashFile",
    input: { path },
  });
  assert.deepEqual(result, { sha256: expected[0], size: data.length });
});

Deno.test("checksumPlugin() equals sha256sum of the files' sha256sum lines", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", { ...CAT_FILES, "Z.ts": "export {};\n" });
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const hex = await checksumPlugin(pool, plugin, files(plugin, ["main.ts", "lib/util.ts", "Z.ts"]));
  const viaShell = await sh(
    plugin.dir,
    "sha256sum main.ts lib/util.ts Z.ts | sort -k2 | sha256sum",
  );
  assert.equal(hex, viaShell.split(" ")[0]);
  assert.match(hex, /^[0-9a-f]{64}$/);
  // Order of the input does not matter; bytewise path order does ("Z" < "l" < "m").
  const digest = await digestPlugin(
    pool,
    plugin,
    files(plugin, ["Z.ts", "main.ts", "lib/util.ts"]),
  );
  assert.equal(digest.hex, hex);
  assert.deepEqual(digest.files.map((f) => f.path), ["Z.ts", "lib/util.ts", "main.ts"]);
  assert.equal(combineFileDigests([...digest.files].reverse()), hex);
});

Deno.test("checksumPlugin() ignores graph files outside the plugin folder (the SDK)", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", CAT_FILES);
  const sdk = await home.write("sdk/mod.ts", "export const sdk = 1;\n");
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const own = await checksumPlugin(pool, plugin, files(plugin, ["main.ts", "lib/util.ts"]));
  const withSdk = await checksumPlugin(pool, plugin, [
    ...files(plugin, ["main.ts", "lib/util.ts"]),
    sdk,
  ]);
  assert.equal(withSdk, own);
});

Deno.test("checksumPlugin() hashes a real module graph from checkModuleGraph()", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", {
    ...CAT_FILES,
    "data.json": '{"a":1}\n',
    "main.ts": 'import { util } from "./lib/util.ts";\nimport d from "./data.json" with ' +
      '{ type: "json" };\nconsole.log(util, d);\n',
    "unused.ts": "export {};\n",
  });
  const importMapPath = await home.write("import_map.json", '{"imports":{}}');
  const graph = await checkModuleGraph(plugin, {
    importMapPath,
    denoDir: join(home.root, "deno-dir"),
  });
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const digest = await digestPlugin(pool, plugin, graph.files);
  assert.deepEqual(digest.files.map((f) => f.path), ["data.json", "lib/util.ts", "main.ts"]);
  const viaShell = await sh(plugin.dir, "sha256sum data.json lib/util.ts main.ts | sha256sum");
  assert.equal(digest.hex, viaShell.split(" ")[0]);
});

Deno.test("checksumPlugin() fails with CHECKSUM_READ when a file is missing", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", CAT_FILES);
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const e = await checksumPlugin(pool, plugin, files(plugin, ["main.ts", "gone.ts"]))
    .then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof IntegrityError, String(e));
  assert.equal(e.code, "CHECKSUM_READ");
  assert.match(e.message, /plugin cat: cannot hash .*gone\.ts: .*No such file/);
});

Deno.test("writeChecksumFile() writes `<hex>  <entrypoint name>` beside the entrypoint", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", CAT_FILES);
  const hex = "ab".repeat(32);
  const { path, text } = await writeChecksumFile(plugin, hex);
  assert.equal(path, join(plugin.dir, "main.ts.sha256"));
  assert.equal(path, checksumFilePath(plugin));
  assert.equal(text, `${hex}  main.ts\n`);
  assert.equal(await Deno.readTextFile(path), `${hex}  main.ts\n`);
  assert.deepEqual(await readChecksumFile(plugin), { path, hex });
  assert.deepEqual(
    [...Deno.readDirSync(plugin.dir)].map((e) => e.name).sort(),
    ["lib", "main.ts", "main.ts.sha256", "manifest.yaml"],
    "no temp file is left behind",
  );
  await assert.rejects(writeChecksumFile(plugin, "xyz"), RangeError);
});

Deno.test("parseChecksumFile() accepts sha256sum lines and refuses anything else", () => {
  const hex = "0f".repeat(32);
  assert.equal(parseChecksumFile(`${hex}  main.ts\n`, "main.ts", "f"), hex);
  assert.equal(parseChecksumFile(`${hex.toUpperCase()} *main.ts`, "main.ts", "f"), hex);
  const bad = [
    ["", /expected 1 line/],
    [`${hex}  main.ts\n${hex}  main.ts\n`, /expected 1 line, found 2/],
    [`${hex.slice(2)}  main.ts`, /62 hex digits, not 64/],
    [`${hex}  other.ts`, /names "other\.ts", not the entrypoint "main\.ts"/],
    [`sha256:${hex}`, /is not `<hex> {2}<file name>`/],
  ] as const;
  for (const [text, message] of bad) {
    assert.throws(
      () => parseChecksumFile(text, "main.ts", "/p/main.ts.sha256"),
      (e: unknown) =>
        e instanceof IntegrityError && e.code === "CHECKSUM_FORMAT" &&
        message.test(e.message) && e.message.startsWith("/p/main.ts.sha256: "),
      text,
    );
  }
});

Deno.test("verifyPlugin() says unsigned, ok, then mismatch after a file changes", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", CAT_FILES);
  const graph = files(plugin, ["main.ts", "lib/util.ts"]);
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const unsigned = await verifyPlugin(pool, plugin, graph);
  assert.equal(unsigned.status, "unsigned");
  assert.deepEqual(unsigned.expected, []);
  assert.doesNotThrow(() => assertVerified(unsigned));
  assert.throws(
    () => assertVerified(unsigned, { required: true }),
    (e: unknown) => e instanceof IntegrityError && e.code === "CHECKSUM_MISSING",
  );

  await writeChecksumFile(plugin, unsigned.actual);
  const ok = await verifyPlugin(pool, plugin, graph);
  assert.equal(ok.status, "ok");
  assert.deepEqual(ok.expected.map((e) => [e.source, e.matches]), [["file", true]]);
  assert.doesNotThrow(() => assertVerified(ok, { required: true }));

  await Deno.writeTextFile(join(plugin.dir, "lib/util.ts"), "export const util = 2;\n");
  const changed = await verifyPlugin(pool, plugin, graph);
  assert.equal(changed.status, "mismatch");
  assert.notEqual(changed.actual, unsigned.actual);
  assert.equal(changed.expected[0]?.hex, unsigned.actual);
  assert.throws(
    () => assertVerified(changed),
    (e: unknown) =>
      e instanceof IntegrityError && e.code === "CHECKSUM_MISMATCH" && e.plugin === "cat" &&
      e.message.includes(`main.ts.sha256 expects ${unsigned.actual}`) &&
      e.message.includes(changed.actual),
  );
});

Deno.test("verifyPlugin() checks the manifest's security.checksum, and both when both exist", async () => {
  await using home = await makeHome();
  const probe = await home.plugin("cat", CAT_FILES);
  const graph = files(probe, ["main.ts", "lib/util.ts"]);
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const actual = await checksumPlugin(pool, probe, graph);
  const signed = await home.plugin("cat", CAT_FILES, {
    security: { checksum: `sha256:${actual}` },
  });
  const ok = await verifyPlugin(pool, signed, graph);
  assert.equal(ok.status, "ok");
  assert.deepEqual(ok.expected.map((e) => e.source), ["manifest"]);
  // A stale .sha256 file beside a correct manifest checksum is still a mismatch.
  await writeChecksumFile(signed, "00".repeat(32));
  const both = await verifyPlugin(pool, signed, graph);
  assert.equal(both.status, "mismatch");
  assert.deepEqual(both.expected.map((e) => [e.source, e.matches]), [
    ["file", false],
    ["manifest", true],
  ]);
  // A malformed .sha256 file is an error, not a silent "unsigned".
  await Deno.writeTextFile(checksumFilePath(signed), "garbage\n");
  await assert.rejects(
    verifyPlugin(pool, signed, graph),
    (e: unknown) => e instanceof IntegrityError && e.code === "CHECKSUM_FORMAT",
  );
});

Deno.test("several plugins are verified at once, their files hashed across the workers", async () => {
  await using home = await makeHome();
  const plugins = await Promise.all(
    ["a", "b", "c"].map((name) =>
      home.plugin(name, {
        ...CAT_FILES,
        ...Object.fromEntries(
          Array.from({ length: 10 }, (_, i) => [`lib/f${i}.ts`, `export const f = ${i};\n`]),
        ),
      })
    ),
  );
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const results = await Promise.all(plugins.map((p) => {
    const graph = [...Deno.readDirSync(join(p.dir, "lib"))].map((e) => join(p.dir, "lib", e.name));
    return verifyPlugin(pool, p, [join(p.dir, "main.ts"), ...graph]);
  }));
  assert.deepEqual(results.map((r) => [r.plugin, r.status, r.files.length]), [
    ["a", "unsigned", 12],
    ["b", "unsigned", 12],
    ["c", "unsigned", 12],
  ]);
  // Same content in each folder -> same checksum (paths are relative to the plugin folder).
  assert.equal(new Set(results.map((r) => r.actual)).size, 1);
  const m = pool.metrics();
  assert.equal(m.succeeded, 36);
  assert.equal(m.workers, 2);
});
