import assert from "node:assert/strict";
import { join } from "node:path";
import {
  discoverPlugins,
  loadManifest,
  ManifestError,
  orderByDependencies,
  planStartOrder,
  type PluginDescriptor,
} from "./mod.ts";

const GOOD = (name: string, extra = "") =>
  `plugin:\n  name: ${name}\n  version: 1.0.0\n  entrypoint: ./main.ts\n${extra}`;

async function withPlugins(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    for (const [path, text] of Object.entries(files)) {
      await Deno.mkdir(join(dir, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, path), text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function manifestError(p: Promise<unknown>): Promise<ManifestError> {
  const e = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof ManifestError, `expected ManifestError, got ${String(e)}`);
  return e;
}

Deno.test("loadManifest() fills defaults and resolves the entrypoint inside the folder", async () => {
  await withPlugins({ "a/manifest.yaml": GOOD("a"), "a/main.ts": "" }, async (dir) => {
    const p = await loadManifest(join(dir, "a"));
    assert.equal(p.name, "a");
    assert.equal(p.entrypoint, join(await Deno.realPath(dir), "a/main.ts"));
    assert.equal(p.manifest.handshake.protocol_version, 1);
    assert.deepEqual(p.manifest.capabilities.filesystem, []);
    assert.equal(p.manifest.plugin.language, "typescript");
  });
});

Deno.test("loadManifest() refuses an unknown key with file, line and suggestion", async () => {
  const text = GOOD("a", "capabilities:\n  filesytem: []\n");
  await withPlugins({ "a/manifest.yaml": text, "a/main.ts": "" }, async (dir) => {
    const e = await manifestError(loadManifest(join(dir, "a")));
    assert.equal(e.code, "MANIFEST_INVALID");
    assert.equal(e.issues[0]?.path, "capabilities.filesytem");
    assert.equal(e.issues[0]?.line, 6);
    assert.match(
      e.message,
      /manifest\.yaml:6:3: capabilities\.filesytem: unknown key \(did you mean "filesystem"\?\)/,
    );
  });
});

Deno.test("loadManifest() refuses entrypoints that leave the plugin folder", async () => {
  const cases: [string, RegExp][] = [
    ["../x.ts", /'\.\.' is not allowed/],
    ["/etc/passwd.ts", /absolute paths/],
    ["https://example.com/x.ts", /URLs/],
    ["npm:left-pad", /npm:/],
    ["jsr:@std/path", /URLs/],
    ["./sub/../../x.ts", /'\.\.'/],
    ["./missing.ts", /file not found/],
    ["./main.exe", /unsupported extension/],
  ];
  for (const [entry, reason] of cases) {
    const text = `plugin:\n  name: a\n  version: 1.0.0\n  entrypoint: "${entry}"\n`;
    await withPlugins({ "a/manifest.yaml": text, "a/main.ts": "" }, async (dir) => {
      const e = await manifestError(loadManifest(join(dir, "a")));
      assert.equal(e.code, "ENTRYPOINT_INVALID", entry);
      assert.equal(e.issues[0]?.line, 4, entry);
      assert.match(e.message, reason, entry);
    });
  }
});

Deno.test("loadManifest() refuses an entrypoint that is a symlink out of the folder", async () => {
  await withPlugins({
    "a/manifest.yaml": GOOD("a").replace("./main.ts", "./link.ts"),
    "outside.ts": "",
  }, async (dir) => {
    await Deno.symlink(join(dir, "outside.ts"), join(dir, "a/link.ts"));
    const e = await manifestError(loadManifest(join(dir, "a")));
    assert.match(e.message, /resolves \(through a symlink\) outside the plugin folder/);
  });
});

Deno.test("loadManifest() checks names, semver and requires_host syntax", async () => {
  const bad = [
    `plugin:\n  name: Bad_Name\n  version: 1.0.0\n  entrypoint: ./main.ts\n`,
    `plugin:\n  name: a\n  version: one\n  entrypoint: ./main.ts\n`,
    `plugin:\n  name: a\n  version: 1.0.0\n  entrypoint: ./main.ts\n  requires_host: "lots"\n`,
    `plugin:\n  name: a\n  version: 1.0.0\n  entrypoint: ./main.ts\ncapabilities:\n  network:\n    egress: [{ hosts: [a.b], ports: [] }]\n`,
  ];
  for (const text of bad) {
    await withPlugins({ "a/manifest.yaml": text, "a/main.ts": "" }, async (dir) => {
      const e = await manifestError(loadManifest(join(dir, "a")));
      assert.equal(e.code, "MANIFEST_INVALID", text);
      assert.ok(e.issues[0]!.line > 0, text);
    });
  }
});

Deno.test("discoverPlugins() skips invalid folders without failing and refuses duplicate names", async () => {
  await withPlugins({
    "good/manifest.yaml": GOOD("good"),
    "good/main.ts": "",
    "broken/manifest.yaml": "plugin: [",
    "twin1/manifest.yaml": GOOD("twin"),
    "twin1/main.ts": "",
    "twin2/manifest.yaml": GOOD("twin"),
    "twin2/main.ts": "",
    "no-manifest/main.ts": "",
    "newer/manifest.yaml": GOOD("newer", '  requires_host: ">=99.0.0"\n'),
    "newer/main.ts": "",
  }, async (dir) => {
    const d = await discoverPlugins(dir, { hostVersion: "0.1.0" });
    assert.deepEqual(d.plugins.map((p) => p.name), ["good"]);
    const reasons = Object.fromEntries(
      d.invalid.map((i) => [i.dir.split("/").at(-1), i.error.code]),
    );
    assert.deepEqual(reasons, {
      broken: "MANIFEST_YAML",
      twin1: "PLUGIN_DUPLICATE",
      twin2: "PLUGIN_DUPLICATE",
      newer: "HOST_VERSION",
    });
  });
});

Deno.test("discoverPlugins() of a missing folder finds nothing", async () => {
  const d = await discoverPlugins("/nonexistent/plugsconc/plugins");
  assert.deepEqual(d, { plugins: [], invalid: [] });
});

function fake(name: string, deps: string[]): PluginDescriptor {
  return { name, manifest: { depends_on: deps } } as unknown as PluginDescriptor;
}

Deno.test("orderByDependencies() puts dependencies first and names a cycle", () => {
  const order = orderByDependencies([
    fake("app", ["db", "cache"]),
    fake("cache", ["db"]),
    fake("db", []),
  ]);
  assert.deepEqual(order.map((p) => p.name), ["db", "cache", "app"]);
  assert.throws(
    () => orderByDependencies([fake("a", ["b"]), fake("b", ["c"]), fake("c", ["a"])]),
    (e: unknown) =>
      e instanceof ManifestError && e.code === "DEPENDENCY_CYCLE" &&
      /a -> b -> c -> a/.test(e.message),
  );
  assert.throws(
    () => orderByDependencies([fake("a", ["ghost"])]),
    (e: unknown) => e instanceof ManifestError && e.code === "DEPENDENCY_MISSING",
  );
});

Deno.test("planStartOrder() refuses only the plugins in a cycle, with a missing dependency, or above them", () => {
  const plan = planStartOrder([
    fake("a", ["b"]),
    fake("b", ["a"]),
    fake("above-cycle", ["a"]),
    fake("lonely", ["ghost"]),
    fake("db", []),
    fake("app", ["db"]),
  ]);
  assert.deepEqual(plan.order.map((p) => p.name), ["db", "app"]);
  const refused = Object.fromEntries(plan.refused.map((r) => [r.plugin.name, r.error]));
  assert.deepEqual(Object.keys(refused).sort(), ["a", "above-cycle", "b", "lonely"]);
  assert.equal(refused.a?.code, "DEPENDENCY_CYCLE");
  assert.equal(refused.b?.code, "DEPENDENCY_CYCLE");
  assert.match(refused.a!.message, /a -> b -> a/);
  assert.equal(refused["above-cycle"]?.code, "DEPENDENCY_FAILED");
  assert.equal(refused.lonely?.code, "DEPENDENCY_MISSING");
  assert.match(refused.lonely!.message, /lonely depends on ghost/);
});
