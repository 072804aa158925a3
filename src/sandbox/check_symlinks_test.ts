import assert from "node:assert/strict";
import { join } from "node:path";
import { checkGrantSymlinks, compileSandbox, type ResolvedFsGrant } from "./mod.ts";
import { makeHost } from "./_testing.ts";

async function tree(root: string, files: Record<string, string>): Promise<void> {
  for (const [rel, text] of Object.entries(files)) {
    const path = join(root, rel);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeTextFile(path, text);
  }
}

function grant(path: string, at = "capabilities.filesystem[0]"): ResolvedFsGrant {
  return { at, declared: path, path, read: true, write: false };
}

Deno.test("checkGrantSymlinks() refuses a symlink that resolves outside the grant, naming link and target", async () => {
  await using host = await makeHost();
  const dir = join(host.root, "granted");
  await tree(dir, { "a/b/file.txt": "x" });
  await Deno.symlink("/etc", join(dir, "a", "b", "etc"));
  const refusals = await checkGrantSymlinks([grant(dir)]);
  assert.equal(refusals.length, 1);
  assert.equal(refusals[0]!.at, "capabilities.filesystem[0]");
  assert.match(
    refusals[0]!.reason,
    new RegExp(`^${join(dir, "a", "b", "etc")} is a symlink to /etc, outside`),
  );
});

Deno.test("checkGrantSymlinks() accepts symlinks that stay inside the grant", async () => {
  await using host = await makeHost();
  const dir = join(host.root, "granted");
  await tree(dir, { "real/file.txt": "x" });
  await Deno.symlink(join(dir, "real"), join(dir, "alias"));
  await Deno.symlink("real/file.txt", join(dir, "relative-link"));
  assert.deepEqual(await checkGrantSymlinks([grant(dir)]), []);
});

Deno.test("checkGrantSymlinks() refuses a symlink to a sibling folder outside the grant", async () => {
  await using host = await makeHost();
  const dir = join(host.root, "granted");
  await tree(host.root, { "granted/x.txt": "x", "granted-secrets/key": "k" });
  await Deno.symlink("../granted-secrets", join(dir, "s"));
  const refusals = await checkGrantSymlinks([grant(dir)]);
  assert.equal(refusals.length, 1);
  assert.match(refusals[0]!.reason, /granted-secrets, outside/);
});

Deno.test("checkGrantSymlinks() refuses broken symlinks", async () => {
  await using host = await makeHost();
  const dir = join(host.root, "granted");
  await tree(dir, { "x.txt": "x" });
  await Deno.symlink(join(host.root, "not-yet"), join(dir, "later"));
  const refusals = await checkGrantSymlinks([grant(dir)]);
  assert.equal(refusals.length, 1);
  assert.match(refusals[0]!.reason, /broken symlink \(to .*not-yet\)/);
});

Deno.test("checkGrantSymlinks() checks each grant against its own root", async () => {
  await using host = await makeHost();
  // Deno checks the link's path: a write grant on outer/inner with a link to outer/other would
  // allow writing outer/other, which only has a read grant.
  const outer = join(host.root, "outer");
  await tree(outer, { "other/x.txt": "x", "inner/y.txt": "y" });
  await Deno.symlink(join(outer, "other"), join(outer, "inner", "to-other"));
  const refusals = await checkGrantSymlinks([
    grant(outer, "capabilities.filesystem[0]"),
    { ...grant(join(outer, "inner"), "capabilities.filesystem[1]"), write: true },
  ]);
  assert.deepEqual(refusals.map((r) => r.at), ["capabilities.filesystem[1]"]);
  assert.equal(refusals[0]!.grant, `${join(outer, "inner")} (read, write)`);
});

Deno.test("checkGrantSymlinks() refuses every unverified grant when the entry bound is reached", async () => {
  await using host = await makeHost();
  const big = join(host.root, "big");
  const files: Record<string, string> = {};
  for (let i = 0; i < 30; i++) files[`d${i % 3}/f${i}.txt`] = "x";
  await tree(big, files);
  const small = join(host.root, "small");
  await tree(small, { "a.txt": "a" });
  const refusals = await checkGrantSymlinks(
    [grant(big, "capabilities.filesystem[0]"), grant(small, "capabilities.filesystem[1]")],
    { maxEntries: 10 },
  );
  assert.deepEqual(refusals.map((r) => r.at), [
    "capabilities.filesystem[0]",
    "capabilities.filesystem[1]",
  ]);
  assert.match(refusals[0]!.reason, /more than 10 entries/);
  assert.match(refusals[1]!.reason, /not verified/);
  assert.deepEqual(await checkGrantSymlinks([grant(big)], { maxEntries: 100 }), []);
});

Deno.test("checkGrantSymlinks() ignores grants that do not exist yet and plain files", async () => {
  await using host = await makeHost();
  await tree(host.root, { "file.txt": "x" });
  assert.deepEqual(
    await checkGrantSymlinks([
      grant(join(host.root, "missing")),
      grant(join(host.root, "file.txt")),
    ]),
    [],
  );
});

Deno.test("checkGrantSymlinks() refuses a grant root that is itself a symlink", async () => {
  await using host = await makeHost();
  await Deno.symlink("/etc", join(host.root, "etc-link"));
  const refusals = await checkGrantSymlinks([grant(join(host.root, "etc-link"))]);
  assert.equal(refusals.length, 1);
  assert.match(refusals[0]!.reason, /itself a symlink/);
});

Deno.test("checkGrantSymlinks() takes a compiled sandbox and finds a link planted in ${DATA_DIR}", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({
    capabilities: { filesystem: [{ path: "${DATA_DIR}", permissions: ["read", "write"] }] },
  });
  const ctx = host.ctx(plugin);
  await Deno.mkdir(join(ctx.dataDir, "sub"), { recursive: true });
  const compiled = compileSandbox(plugin, ctx);
  assert.deepEqual(await checkGrantSymlinks(compiled), []);
  await Deno.symlink(host.configFile, join(ctx.dataDir, "sub", "config.yaml"));
  const refusals = await checkGrantSymlinks(compiled);
  assert.equal(refusals.length, 1);
  assert.equal(refusals[0]!.grant, "${DATA_DIR} (read, write)");
  assert.match(refusals[0]!.reason, /config\.yaml is a symlink to .*config\.yaml, outside/);
});

Deno.test("checkGrantSymlinks() stops when its signal is aborted", async () => {
  await using host = await makeHost();
  const dir = join(host.root, "granted");
  await tree(dir, { "x.txt": "x" });
  const controller = new AbortController();
  controller.abort(new Error("stop"));
  await assert.rejects(checkGrantSymlinks([grant(dir)], { signal: controller.signal }), /stop/);
});

Deno.test("checkGrantSymlinks() rejects a non-positive entry bound", async () => {
  await assert.rejects(checkGrantSymlinks([], { maxEntries: 0 }), RangeError);
});
