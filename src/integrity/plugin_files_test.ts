import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { loadManifest } from "../manifest/mod.ts";
import { IntegrityError } from "./integrity_error.ts";
import { listPluginFiles } from "./plugin_files.ts";

async function pluginDir(files: Record<string, string>) {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-files-" }));
  const dir = join(root, "cat");
  const all = {
    "manifest.yaml": "plugin: { name: cat, version: 1.0.0, entrypoint: ./src/main.ts }\n",
    ...files,
  };
  for (const [rel, text] of Object.entries(all)) {
    await Deno.mkdir(dirname(join(dir, rel)), { recursive: true });
    await Deno.writeTextFile(join(dir, rel), text);
  }
  return { root, dir, [Symbol.asyncDispose]: () => Deno.remove(root, { recursive: true }) };
}

Deno.test("listPluginFiles() lists every file and symlink (the manifest too), sorted, without following links, but the checksum file", async () => {
  await using home = await pluginDir({
    "src/main.ts": "export {};\n",
    "src/main.ts.sha256": `${"0".repeat(64)}  main.ts\n`,
    "main.ts.sha256": "not the checksum file: the entrypoint is src/main.ts\n",
    "lib/a/b/c.js": "export {};\n",
    ".env": "X=1\n",
  });
  await Deno.mkdir(join(home.dir, "empty"));
  await Deno.mkdir(join(home.root, "outside"));
  await Deno.writeTextFile(join(home.root, "outside/never.js"), "export {};\n");
  await Deno.symlink(join(home.root, "outside"), join(home.dir, "lib/linked"));
  const plugin = await loadManifest(home.dir);
  const entries = await listPluginFiles(plugin);
  assert.deepEqual(entries.map((e) => [e.path, e.kind]), [
    [".env", "file"],
    ["lib/a/b/c.js", "file"],
    ["lib/linked", "symlink"],
    ["main.ts.sha256", "file"],
    ["manifest.yaml", "file"],
    ["src/main.ts", "file"],
  ]);
  const link = entries.find((e) => e.kind === "symlink");
  assert.equal(link?.kind === "symlink" ? link.target : undefined, join(home.root, "outside"));
  assert.equal(entries[1]?.abs, join(home.dir, "lib/a/b/c.js"));
});

Deno.test("listPluginFiles() names a socket it refuses, and checks maxEntries", async () => {
  await using home = await pluginDir({ "src/main.ts": "export {};\n" });
  const plugin = await loadManifest(home.dir);
  await assert.rejects(listPluginFiles(plugin, { maxEntries: 1.5 }), RangeError);
  const path = join(home.dir, "src/sock");
  using _listener = Deno.listen({ transport: "unix", path });
  await assert.rejects(
    listPluginFiles(plugin),
    (e: unknown) =>
      e instanceof IntegrityError && e.code === "CHECKSUM_FILE_TYPE" &&
      e.message.includes(`${path} is a socket`),
  );
});

Deno.test("listPluginFiles() stops when aborted", async () => {
  await using home = await pluginDir({ "src/main.ts": "export {};\n" });
  const plugin = await loadManifest(home.dir);
  const signal = AbortSignal.abort(new Error("stop"));
  await assert.rejects(listPluginFiles(plugin, { signal }), /stop/);
});
