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
  manifestHashBytes,
  MAX_PLUGIN_ENTRIES,
  parseChecksumFile,
  readChecksumFile,
  verifyPlugin,
  writeChecksumFile,
  ZERO_CHECKSUM,
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

/** The reproduction command of the docs (a folder without symlinks). */
const FIND_SHA256SUM = "find . -type f ! -path ./main.ts.sha256 " +
  "-printf '%P\\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum";

/** The docs' step before it for a manifest with `security.checksum` (GNU sed, on a copy). */
const ZERO_VALUE = (hex: string) =>
  `sed -i "0,/sha256:${hex}/s//sha256:$(printf '0%.0s' $(seq 64))/" manifest.yaml`;

/** The reproduction command of the docs, symlinks included (bash: `read -d ''`). */
const FIND_WITH_LINKS = "find . ! -type d ! -path ./main.ts.sha256 " +
  "-printf '%P\\0' | LC_ALL=C sort -z | while IFS= read -r -d '' f; do " +
  'if [ -L "$f" ]; then printf \'%s  %s\\n\' "$(readlink -n -- "$f" | sha256sum | cut -d\' \' -f1)" "$f"; ' +
  'else sha256sum -- "$f"; fi; done | sha256sum';

Deno.test("checksumPlugin() equals the documented find | sort | sha256sum command", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", {
    ...CAT_FILES,
    "Z.ts": "export {};\n",
    "lib/deep/er/x.js": "export const x = 1;\n",
    ".hidden": "export default 1;\n",
    "noext": "export const n = 1;\n",
    "a b.txt": "spaces\n",
  });
  await writeChecksumFile(plugin, "ab".repeat(32));
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const digest = await digestPlugin(pool, plugin);
  assert.match(digest.hex, /^[0-9a-f]{64}$/);
  assert.equal(digest.hex, (await sh(plugin.dir, FIND_SHA256SUM)).split(" ")[0]);
  // Bytewise path order ("." < "Z" < "a" < "l" < "m" < "n"), without the .sha256 file.
  assert.deepEqual(digest.files.map((f) => f.path), [
    ".hidden",
    "Z.ts",
    "a b.txt",
    "lib/deep/er/x.js",
    "lib/util.ts",
    "main.ts",
    "manifest.yaml",
    "noext",
  ]);
  assert.ok(digest.files.every((f) => f.kind === "file"));
  assert.equal(combineFileDigests([...digest.files].reverse()), digest.hex);
  assert.equal(await checksumPlugin(pool, plugin), digest.hex);
});

Deno.test("checksumPlugin() counts a symlink by its target's text, as the documented bash command does", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", CAT_FILES);
  await Deno.symlink("util.ts", join(plugin.dir, "lib/alias.ts"));
  await Deno.symlink("/nowhere/at/all", join(plugin.dir, "dangling"));
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const digest = await digestPlugin(pool, plugin);
  const alias = digest.files.find((f) => f.path === "lib/alias.ts");
  assert.deepEqual(alias, {
    path: "lib/alias.ts",
    kind: "symlink",
    sha256: (await sh(home.root, "printf %s util.ts | sha256sum")).split(" ")[0],
    size: "util.ts".length,
  });
  assert.equal(digest.files.find((f) => f.path === "dangling")?.kind, "symlink");
  const viaBash = await new Deno.Command("bash", {
    args: ["-c", FIND_WITH_LINKS],
    cwd: plugin.dir,
    env: { LC_ALL: "C", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    stdout: "piped",
  }).output();
  assert.ok(viaBash.success);
  assert.equal(digest.hex, new TextDecoder().decode(viaBash.stdout).split(" ")[0]);
});

Deno.test("checksumPlugin() covers a file outside the static module graph, loaded by a computed import()", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", {
    "main.ts": 'const m = await import(`./lib/${"hel" + "lo"}`);\nconsole.log(m.greet());\n',
    "lib/hello": "export const greet = () => 'hi';\n",
  });
  const importMapPath = await home.write("import_map.json", '{"imports":{}}');
  const graph = await checkModuleGraph(plugin, {
    importMapPath,
    denoDir: join(home.root, "deno-dir"),
  });
  assert.ok(!graph.files.some((f) => f.endsWith("/lib/hello")), "deno info cannot see it");
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const before = await digestPlugin(pool, plugin);
  assert.deepEqual(before.files.map((f) => f.path), ["lib/hello", "main.ts", "manifest.yaml"]);
  await Deno.writeTextFile(join(plugin.dir, "lib/hello"), "export const greet = () => 'pwned';\n");
  assert.notEqual(await checksumPlugin(pool, plugin), before.hex);
});

Deno.test("checksumPlugin() changes when a symlink is retargeted, not when its target's file changes", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", {
    ...CAT_FILES,
    "lib/a.ts": "export const v = 'a';\n",
    "lib/b.ts": "export const v = 'b';\n",
  });
  const outside = await home.write("elsewhere/c.ts", "export const v = 'c';\n");
  const link = join(plugin.dir, "lib/current.ts");
  await Deno.symlink("a.ts", link);
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const toA = await checksumPlugin(pool, plugin);
  await Deno.remove(link);
  await Deno.symlink("b.ts", link);
  const toB = await checksumPlugin(pool, plugin);
  assert.notEqual(toB, toA);
  await Deno.remove(link);
  await Deno.symlink(outside, link);
  const toOutside = await checksumPlugin(pool, plugin);
  assert.notEqual(toOutside, toB);
  // Not followed: the content outside the folder is not covered (the link's text is).
  await Deno.writeTextFile(outside, "export const v = 'changed';\n");
  assert.equal(await checksumPlugin(pool, plugin), toOutside);
  // A link in place of a file with the same content is a change too.
  await Deno.remove(link);
  await Deno.copyFile(join(plugin.dir, "lib/a.ts"), link);
  assert.notEqual(await checksumPlugin(pool, plugin), toA);
});

Deno.test("checksumPlugin() leaves out exactly the checksum file; the manifest counts", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", CAT_FILES);
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const hex = await checksumPlugin(pool, plugin);
  await writeChecksumFile(plugin, hex);
  assert.equal(await checksumPlugin(pool, plugin), hex, ".sha256 does not count");
  const manifest = await Deno.readTextFile(plugin.manifestFile);
  await Deno.writeTextFile(plugin.manifestFile, "\n# a comment\n", { append: true });
  assert.notEqual(await checksumPlugin(pool, plugin), hex, "the manifest counts");
  await Deno.writeTextFile(plugin.manifestFile, manifest);
  assert.equal(await checksumPlugin(pool, plugin), hex);
  // Files that look like them elsewhere do count.
  for (const rel of ["lib/manifest.yaml", "lib/main.ts.sha256", "manifest.yml", "main.ts.sha"]) {
    const path = await home.write(`plugins/cat/${rel}`, "x\n");
    assert.notEqual(await checksumPlugin(pool, plugin), hex, rel);
    await Deno.remove(path);
  }
  // A folder at the checksum file's path is walked, not skipped.
  await Deno.remove(checksumFilePath(plugin));
  await home.write("plugins/cat/main.ts.sha256/evil.js", "export {};\n");
  const digest = await digestPlugin(pool, plugin);
  assert.ok(digest.files.some((f) => f.path === "main.ts.sha256/evil.js"));
});

Deno.test("manifestHashBytes() zeroes the first occurrence of the declared value only", () => {
  const enc = new TextEncoder();
  const dec = (b: Uint8Array) => new TextDecoder().decode(b);
  const value = `sha256:${"ab".repeat(32)}`;
  const text = `# ${value}\nsecurity: { checksum: "${value}" }\n`;
  assert.equal(
    dec(manifestHashBytes(enc.encode(text), value)),
    `# ${ZERO_CHECKSUM}\nsecurity: { checksum: "${value}" }\n`,
  );
  assert.equal(ZERO_CHECKSUM, `sha256:${"0".repeat(64)}`);
  // Nothing declared, or not written as such: the bytes as they are.
  const bytes = enc.encode(text);
  assert.equal(manifestHashBytes(bytes, undefined), bytes);
  assert.equal(dec(manifestHashBytes(bytes, `sha256:${"cd".repeat(32)}`)), text);
  assert.equal(dec(bytes), text, "the input is not changed");
});

Deno.test("a manifest that declares security.checksum: only its value is neutral; code in the manifest counts", async () => {
  await using home = await makeHome();
  // Sign in the manifest: a placeholder value first, then the checksum that prints.
  const placeholder = await home.plugin("cat", CAT_FILES, {
    security: { checksum: ZERO_CHECKSUM },
  });
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const hex = await checksumPlugin(pool, placeholder);
  const signed = await home.plugin("cat", CAT_FILES, {
    security: { checksum: `sha256:${hex}` },
  });
  assert.equal(await checksumPlugin(pool, signed), hex, "the value does not count");
  assert.equal((await verifyPlugin(pool, signed)).status, "ok");
  // The documented reproduction: on a copy, the value zeroed with sed, then find | sha256sum.
  const copy = join(home.root, "copy");
  await sh(home.root, `cp -r plugins/cat ${copy}`);
  assert.equal((await sh(copy, `${ZERO_VALUE(hex)} && ${FIND_SHA256SUM}`)).split(" ")[0], hex);
  // Another value: a mismatch (the same folder hash, but not the declared one).
  const other = await home.plugin("cat", CAT_FILES, {
    security: { checksum: `sha256:${"1".repeat(64)}` },
  });
  const wrong = await verifyPlugin(pool, other);
  assert.equal(wrong.status, "mismatch");
  assert.equal(wrong.actual, hex);
  // Code in the manifest (a YAML/JavaScript polyglot line) changes the checksum.
  const file = signed.manifestFile;
  await Deno.writeTextFile(file, (await Deno.readTextFile(file)) + "# export {}\n");
  const edited = await verifyPlugin(pool, signed);
  assert.equal(edited.status, "mismatch");
  assert.notEqual(edited.actual, hex);
  // Without the key at all, the manifest hashes as it is: not the same as with a zero value.
  assert.notEqual(await checksumPlugin(pool, await home.plugin("cat", CAT_FILES)), hex);
});

Deno.test("checksumPlugin() refuses a FIFO in the plugin folder with CHECKSUM_FILE_TYPE naming it", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", CAT_FILES);
  const fifo = join(plugin.dir, "lib/pipe");
  await sh(home.root, `mkfifo '${fifo}'`);
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const e = await checksumPlugin(pool, plugin).then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof IntegrityError, String(e));
  assert.equal(e.code, "CHECKSUM_FILE_TYPE");
  assert.equal(e.plugin, "cat");
  assert.ok(e.message.includes(`${fifo} is a FIFO`), e.message);
  assert.equal(e.details.file, fifo);
});

Deno.test("checksumPlugin() stops at the entry cap with CHECKSUM_TOO_MANY_FILES", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", CAT_FILES);
  for (let i = 0; i < 20; i++) await home.write(`plugins/cat/data/f${i}`, `${i}\n`);
  await using pool = new WorkerPool({ maxWorkers: 1 });
  // manifest.yaml, main.ts, lib, lib/util.ts, data and its 20 files: 25 entries.
  assert.equal((await digestPlugin(pool, plugin, { maxEntries: 25 })).files.length, 23);
  const e = await checksumPlugin(pool, plugin, { maxEntries: 24 })
    .then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof IntegrityError, String(e));
  assert.equal(e.code, "CHECKSUM_TOO_MANY_FILES");
  assert.match(e.message, /plugin cat: .* holds more than 24 entries/);
  assert.equal(pool.metrics().submitted, 22, "nothing was hashed for the refused walk");
  assert.equal(MAX_PLUGIN_ENTRIES, 10_000);
  await assert.rejects(checksumPlugin(pool, plugin, { maxEntries: 0 }), RangeError);
});

Deno.test("checksumPlugin() fails with CHECKSUM_READ when a folder cannot be read", async () => {
  await using home = await makeHome();
  const plugin = await home.plugin("cat", CAT_FILES);
  await Deno.remove(plugin.dir, { recursive: true });
  await using pool = new WorkerPool({ maxWorkers: 1 });
  const e = await checksumPlugin(pool, plugin).then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof IntegrityError, String(e));
  assert.equal(e.code, "CHECKSUM_READ");
  assert.match(e.message, /plugin cat: cannot read the folder .*plugins\/cat .*No such file/);
});

Deno.test("hashFile() refuses what is not a regular file", async () => {
  await assert.rejects(hashFile({ path: "/dev/zero" }), TypeError);
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
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const unsigned = await verifyPlugin(pool, plugin);
  assert.equal(unsigned.status, "unsigned");
  assert.deepEqual(unsigned.expected, []);
  assert.doesNotThrow(() => assertVerified(unsigned));
  assert.throws(
    () => assertVerified(unsigned, { required: true }),
    (e: unknown) => e instanceof IntegrityError && e.code === "CHECKSUM_MISSING",
  );

  await writeChecksumFile(plugin, unsigned.actual);
  const ok = await verifyPlugin(pool, plugin);
  assert.equal(ok.status, "ok");
  assert.deepEqual(ok.expected.map((e) => [e.source, e.matches]), [["file", true]]);
  assert.doesNotThrow(() => assertVerified(ok, { required: true }));

  await Deno.writeTextFile(join(plugin.dir, "lib/util.ts"), "export const util = 2;\n");
  const changed = await verifyPlugin(pool, plugin);
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
  const probe = await home.plugin("cat", CAT_FILES, { security: { checksum: ZERO_CHECKSUM } });
  await using pool = new WorkerPool({ maxWorkers: 2 });
  const actual = await checksumPlugin(pool, probe);
  const signed = await home.plugin("cat", CAT_FILES, {
    security: { checksum: `sha256:${actual}` },
  });
  const ok = await verifyPlugin(pool, signed);
  assert.equal(ok.status, "ok");
  assert.deepEqual(ok.expected.map((e) => e.source), ["manifest"]);
  // A stale .sha256 file beside a correct manifest checksum is still a mismatch.
  await writeChecksumFile(signed, "00".repeat(32));
  const both = await verifyPlugin(pool, signed);
  assert.equal(both.status, "mismatch");
  assert.deepEqual(both.expected.map((e) => [e.source, e.matches]), [
    ["file", false],
    ["manifest", true],
  ]);
  // A malformed .sha256 file is an error, not a silent "unsigned".
  await Deno.writeTextFile(checksumFilePath(signed), "garbage\n");
  await assert.rejects(
    verifyPlugin(pool, signed),
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
  const results = await Promise.all(plugins.map((p) => verifyPlugin(pool, p)));
  assert.deepEqual(results.map((r) => [r.plugin, r.status, r.files.length]), [
    ["a", "unsigned", 13],
    ["b", "unsigned", 13],
    ["c", "unsigned", 13],
  ]);
  // Same files in each folder -> same digests (paths are relative to the plugin folder); the
  // manifests differ (the plugin name), and so do the checksums.
  const others = (r: (typeof results)[number]) =>
    JSON.stringify(r.files.filter((f) => f.path !== "manifest.yaml"));
  assert.equal(new Set(results.map(others)).size, 1);
  assert.equal(new Set(results.map((r) => r.actual)).size, 3);
  const m = pool.metrics();
  assert.equal(m.succeeded, 36, "the manifests are hashed in-process");
  assert.equal(m.workers, 2);
});
