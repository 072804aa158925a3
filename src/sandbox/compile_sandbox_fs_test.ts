import assert from "node:assert/strict";
import { join } from "node:path";
import { compileSandbox } from "./mod.ts";
import { loadManifest } from "../manifest/mod.ts";
import { compile, flag, fsManifest, makeHost } from "./_testing.ts";

// ---------------------------------------------------------------------------- filesystem

Deno.test("compileSandbox() resolves ${DATA_DIR}, relative and absolute paths and maps permissions to read/write", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin(
    fsManifest(
      { path: "${DATA_DIR}/state", permissions: ["read", "write"] },
      { path: "./assets", permissions: ["list"] },
      { path: "${DATA_DIR}/out", permissions: ["create"] },
      { path: "${DATA_DIR}/trash", permissions: ["delete"] },
      { path: "./assets", permissions: ["read"] },
    ),
    { "assets/a.txt": "a" },
  );
  const ctx = host.ctx(plugin);
  const c = compileSandbox(plugin, ctx);
  assert.deepEqual(c.refusals, []);
  const state = join(ctx.dataDir, "state");
  const assets = join(plugin.dir, "assets");
  assert.deepEqual(c.grants.read, [assets, state].sort());
  assert.deepEqual(
    c.grants.write,
    [join(ctx.dataDir, "out"), state, join(ctx.dataDir, "trash")].sort(),
  );
  assert.equal(flag(c, "--allow-read"), [assets, state].sort().join(","));
  assert.equal(flag(c, "--allow-write"), c.grants.write.join(","));
  assert.equal(c.argv.filter((a) => a.startsWith("--allow-read=")).length, 1);
  assert.deepEqual(c.fs.map((g) => [g.at, g.declared, g.read, g.write]), [
    ["capabilities.filesystem[0]", "${DATA_DIR}/state", true, true],
    ["capabilities.filesystem[1]", "./assets", true, false],
    ["capabilities.filesystem[2]", "${DATA_DIR}/out", false, true],
    ["capabilities.filesystem[3]", "${DATA_DIR}/trash", false, true],
    ["capabilities.filesystem[4]", "./assets", true, false],
  ]);
});

Deno.test("compileSandbox() keeps an absolute path inside an allowed root", async () => {
  await using host = await makeHost();
  const shared = join(host.root, "shared");
  const c = await compile(
    host,
    fsManifest({ path: `${shared}/in`, permissions: ["read"] }),
    { security: { allowed_roots: [shared] } },
  );
  assert.deepEqual(c.refusals, []);
  assert.deepEqual(c.grants.read, [join(shared, "in")]);
});

Deno.test("compileSandbox() refuses a path containing ',', NUL or a line break", async (t) => {
  await using host = await makeHost();
  for (const path of ["./a,/etc", "${DATA_DIR}/x\0y", "./a\n--allow-all", "./a\rb"]) {
    await t.step(JSON.stringify(path), async () => {
      const c = await compile(
        host,
        fsManifest({ path: "./ok", permissions: ["read"] }, { path, permissions: ["read"] }),
      );
      assert.deepEqual(c.refusals.map((r) => r.at), ["capabilities.filesystem[1]"]);
      assert.match(c.refusals[0]!.reason, /','/);
      assert.ok(!c.argv.some((a) => a.includes("/etc") || a.includes("--allow-all\n")));
    });
  }
});

Deno.test("compileSandbox() refuses a ${DATA_DIR} that resolves to a path with a comma", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin(fsManifest({ path: "${DATA_DIR}", permissions: ["read"] }));
  const ctx = { ...host.ctx(plugin), dataDir: join(host.dataDir, "a,b") };
  const c = compileSandbox(plugin, ctx);
  assert.equal(c.refusals.length, 1);
  assert.match(c.refusals[0]!.reason, /contains ','/);
  assert.equal(flag(c, "--allow-read"), undefined);
});

Deno.test("compileSandbox() refuses /, /proc, /dev, /sys and anything under them, whatever the roots", async (t) => {
  await using host = await makeHost();
  for (
    const path of ["/", "/proc", "/proc/self/environ", "/dev", "/dev/shm", "/sys", "/sys/kernel"]
  ) {
    await t.step(path, async () => {
      const c = await compile(host, fsManifest({ path, permissions: ["read"] }), {
        security: { allowed_roots: ["/"] },
      });
      assert.equal(c.refusals.length, 1);
      assert.match(c.refusals[0]!.reason, /root or a system folder/);
    });
  }
});

Deno.test("compileSandbox() refuses a grant outside allowed roots", async (t) => {
  await using host = await makeHost();
  await t.step("default roots are dirs.plugins and dirs.data", async () => {
    const c = await compile(host, fsManifest({ path: "/etc", permissions: ["read"] }));
    assert.equal(c.refusals.length, 1);
    assert.match(c.refusals[0]!.reason, /outside the allowed roots/);
    assert.equal(flag(c, "--allow-read"), undefined);
  });
  await t.step("explicit roots replace the defaults", async () => {
    const shared = join(host.root, "shared");
    const c = await compile(
      host,
      fsManifest({ path: join(host.root, "elsewhere"), permissions: ["read"] }),
      {
        security: { allowed_roots: [shared] },
      },
    );
    assert.match(c.refusals[0]!.reason, /outside the allowed roots/);
  });
  await t.step("'..' cannot climb out", async () => {
    const c = await compile(host, fsManifest({ path: "../../../etc", permissions: ["read"] }));
    assert.match(c.refusals[0]!.reason, /outside the allowed roots/);
  });
  await t.step("a symlink in the plugin folder is followed before the check", async () => {
    const plugin = await host.plugin(
      fsManifest({ path: "./etc-link/passwd", permissions: ["read"] }),
    );
    await Deno.symlink("/etc", join(plugin.dir, "etc-link"));
    const c = compileSandbox(plugin, host.ctx(plugin));
    assert.equal(c.refusals.length, 1);
    assert.match(c.refusals[0]!.reason, /^\/etc\/passwd is outside the allowed roots/);
  });
  await t.step("a dangling symlink resolves to its target", async () => {
    const plugin = await host.plugin(
      fsManifest({ path: "${DATA_DIR}/later", permissions: ["write"] }),
    );
    const ctx = host.ctx(plugin);
    await Deno.mkdir(ctx.dataDir, { recursive: true });
    await Deno.symlink(join(host.root, "not-yet", "dir"), join(ctx.dataDir, "later"));
    const c = compileSandbox(plugin, ctx);
    assert.equal(c.refusals.length, 1);
    assert.match(c.refusals[0]!.reason, /not-yet\/dir is outside the allowed roots/);
  });
  await t.step("a missing leaf under a symlinked folder resolves through the link", async () => {
    const plugin = await host.plugin(
      fsManifest({ path: "${DATA_DIR}/out/new.txt", permissions: ["write"] }),
    );
    const ctx = host.ctx(plugin);
    await Deno.mkdir(ctx.dataDir, { recursive: true });
    await Deno.symlink("/tmp", join(ctx.dataDir, "out"));
    const c = compileSandbox(plugin, ctx);
    assert.equal(c.refusals.length, 1);
    assert.match(c.refusals[0]!.reason, /^\/tmp\/new\.txt is outside the allowed roots/);
  });
});

Deno.test("compileSandbox() refuses the host config, log database, DENO_DIRs and import map", async (t) => {
  await using host = await makeHost();
  const db = join(host.dataDir, "logs.db");
  const rows: [string, string, RegExp][] = [
    ["config file", host.configFile, /host config file/],
    ["folder containing the config file", host.root, /host config file/],
    ["log database", db, /log database/],
    ["log database WAL", `${db}-wal`, /log database/],
    ["log database SHM", `${db}-shm`, /log database/],
    ["log database journal", `${db}-journal`, /log database/],
    ["host DENO_DIR", join(host.hostDenoDir, "npm"), /host's DENO_DIR/],
    ["import map", host.importMapPath, /SDK import map/],
    ["plugin DENO_DIR", join(host.dataDir, "cache", "cat", "gen"), /plugin's DENO_DIR/],
  ];
  for (const [name, path, reason] of rows) {
    await t.step(name, async () => {
      const c = await compile(host, fsManifest({ path, permissions: ["read"] }), {
        security: { allowed_roots: [host.root] },
      });
      assert.equal(c.refusals.length, 1, JSON.stringify(c.refusals));
      assert.match(c.refusals[0]!.reason, reason);
    });
  }
  await t.step("extra protected paths from the context", async () => {
    const plugin = await host.plugin(fsManifest({ path: host.sdkEntry, permissions: ["read"] }));
    const c = compileSandbox(plugin, {
      ...host.ctx(plugin, { security: { allowed_roots: [host.root] } }),
      protectedPaths: [host.sdkEntry],
    });
    assert.match(c.refusals[0]!.reason, /host-owned path/);
  });
});

Deno.test("compileSandbox() refuses write access to any plugin's code folder and points to ${DATA_DIR}", async (t) => {
  await using host = await makeHost();
  await host.plugin({ plugin: { name: "dog" } }, { "secret.json": "{}" });
  const rows: [string, string, string][] = [
    ["own folder", "./", "write"],
    ["own subfolder", "./cache", "create"],
    ["another plugin", "../dog", "delete"],
    ["dirs.plugins", "..", "write"],
  ];
  for (const [name, path, perm] of rows) {
    await t.step(name, async () => {
      const c = await compile(host, fsManifest({ path, permissions: [perm] }));
      assert.equal(c.refusals.length, 1);
      assert.match(c.refusals[0]!.reason, /plugin code.*\$\{DATA_DIR\}/);
      assert.equal(flag(c, "--allow-write"), undefined);
    });
  }
});

Deno.test("compileSandbox() refuses write access to its own code folder when it lies outside dirs.plugins", async () => {
  await using host = await makeHost();
  const dir = join(host.root, "external", "ext");
  await host.write("external/ext/main.ts", "export {};\n");
  await host.write(
    "external/ext/manifest.yaml",
    JSON.stringify({
      plugin: { name: "ext", version: "1.0.0", entrypoint: "./main.ts" },
      capabilities: {
        filesystem: [
          { path: "./cache", permissions: ["write"] },
          { path: "./assets", permissions: ["read"] },
        ],
      },
    }),
  );
  const plugin = await loadManifest(dir);
  const c = compileSandbox(plugin, host.ctx(plugin));
  assert.deepEqual(c.refusals.map((r) => r.at), ["capabilities.filesystem[0]"]);
  assert.match(c.refusals[0]!.reason, /plugin code/);
  assert.deepEqual(c.grants.read, [join(dir, "assets")]);
});

Deno.test("compileSandbox() refuses reading other plugins' folders but allows its own", async (t) => {
  await using host = await makeHost();
  await host.plugin({ plugin: { name: "dog" } }, { "secret.json": "{}" });
  await t.step("dirs.plugins itself", async () => {
    const c = await compile(host, fsManifest({ path: "..", permissions: ["read"] }));
    assert.match(c.refusals[0]!.reason, /contains every plugin's folder/);
  });
  await t.step("another plugin's file", async () => {
    const c = await compile(
      host,
      fsManifest({ path: "../dog/secret.json", permissions: ["read"] }),
    );
    assert.match(c.refusals[0]!.reason, /another plugin's folder/);
  });
  await t.step("its own folder", async () => {
    const c = await compile(host, fsManifest({ path: "./", permissions: ["read", "list"] }));
    assert.deepEqual(c.refusals, []);
    assert.deepEqual(c.grants.read, [join(host.pluginsDir, "cat")]);
  });
});

Deno.test("compileSandbox() refuses the host data folder outside the plugin's own ${DATA_DIR}", async (t) => {
  await using host = await makeHost();
  await t.step("dirs.data itself", async () => {
    const c = await compile(host, fsManifest({ path: host.dataDir, permissions: ["read"] }));
    assert.equal(c.refusals.length, 1);
    assert.match(c.refusals[0]!.reason, /log database|host data folder/);
  });
  await t.step("another plugin's DATA_DIR", async () => {
    const c = await compile(
      host,
      fsManifest({ path: "${DATA_DIR}/../dog", permissions: ["read", "write"] }),
    );
    assert.match(c.refusals[0]!.reason, /outside this plugin's own \$\{DATA_DIR\}/);
  });
  await t.step("an allowed root inside dirs.data is a deliberate shared folder", async () => {
    const shared = join(host.dataDir, "shared");
    const c = await compile(
      host,
      fsManifest({ path: `${shared}/x`, permissions: ["read", "write"] }),
      {
        security: { allowed_roots: [shared] },
      },
    );
    assert.deepEqual(c.refusals, []);
  });
});

Deno.test("compileSandbox() refuses recursive: false on a directory (strict) and widens it with a warning (permissive)", async (t) => {
  await using host = await makeHost();
  const manifest = fsManifest({ path: "./assets", permissions: ["read"], recursive: false });
  const files = { "assets/a.txt": "a" };
  await t.step("strict", async () => {
    const c = await compile(host, manifest, {}, files);
    assert.equal(c.refusals.length, 1);
    assert.match(c.refusals[0]!.reason, /recursive: false cannot be enforced/);
    assert.deepEqual(c.grants.read, []);
  });
  await t.step("permissive", async () => {
    const c = await compile(host, manifest, { security: { policy: "permissive" } }, files);
    assert.deepEqual(c.refusals, []);
    assert.deepEqual(c.grants.read, [join(host.pluginsDir, "cat", "assets")]);
    assert.match(c.warnings.join("\n"), /recursive: false widened/);
  });
  await t.step("a trailing slash marks a directory", async () => {
    const c = await compile(
      host,
      fsManifest({ path: "./later/", permissions: ["read"], recursive: false }),
    );
    assert.equal(c.refusals.length, 1);
  });
  await t.step("a file is fine", async () => {
    const c = await compile(
      host,
      fsManifest({ path: "./assets/a.txt", permissions: ["read"], recursive: false }),
      {},
      files,
    );
    assert.deepEqual([c.refusals, c.warnings], [[], []]);
  });
  await t.step("a missing path gets a warning", async () => {
    const c = await compile(
      host,
      fsManifest({ path: "${DATA_DIR}/notes.json", permissions: ["write"], recursive: false }),
    );
    assert.deepEqual(c.refusals, []);
    assert.match(c.warnings.join("\n"), /does not exist yet/);
  });
});

Deno.test("compileSandbox() refuses unknown variables and '~'", async () => {
  await using host = await makeHost();
  const c = await compile(
    host,
    fsManifest(
      { path: "${HOME}/.ssh", permissions: ["read"] },
      { path: "~/.ssh", permissions: ["read"] },
      { path: "${DATA_DIR}x", permissions: ["read"] },
    ),
  );
  assert.deepEqual(c.refusals.map((r) => r.at), [
    "capabilities.filesystem[0]",
    "capabilities.filesystem[1]",
    "capabilities.filesystem[2]",
  ]);
});
