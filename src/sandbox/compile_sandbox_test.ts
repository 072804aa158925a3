import assert from "node:assert/strict";
import { join } from "node:path";
import { assertSafeArgv, BASE_FLAGS, compileSandbox, SandboxError } from "./mod.ts";
import { loadManifest } from "../manifest/mod.ts";
import { makeHost, type ManifestInput, type TestHost } from "./_testing.ts";
import type { CompiledSandbox } from "./types.ts";

const DENY_ALL = "--deny-net=0.0.0.0/8,100.100.100.200,127.0.0.0/8,169.254.0.0/16,[::1],[::]," +
  "[fd00:ec2::254]";

async function compile(
  host: TestHost,
  manifest: ManifestInput,
  config: Record<string, unknown> = {},
  files?: Record<string, string>,
): Promise<CompiledSandbox> {
  const plugin = await host.plugin(manifest, files);
  return compileSandbox(plugin, host.ctx(plugin, config));
}

function flag(c: CompiledSandbox, name: string): string | undefined {
  const arg = c.argv.find((a) => a.startsWith(`${name}=`));
  return arg?.slice(name.length + 1);
}

function fsManifest(...grants: Record<string, unknown>[]): ManifestInput {
  return { capabilities: { filesystem: grants } };
}

function egress(hosts: string[], ports = [443], protocol = "tcp"): ManifestInput {
  return { capabilities: { network: { egress: [{ protocol, hosts, ports }] } } };
}

// ---------------------------------------------------------------------------------- argv

Deno.test("compileSandbox() emits the fixed flags, import map, memory limit and entrypoint in order", async () => {
  await using host = await makeHost();
  const c = await compile(host, {});
  assert.deepEqual(c.argv, [
    "run",
    "--no-prompt",
    "--no-config",
    "--cached-only",
    "--no-remote",
    "--no-npm",
    `--import-map=${host.importMapPath}`,
    "--v8-flags=--max-old-space-size=256",
    DENY_ALL,
    "--allow-env=PLUGSCONC_PLUGIN",
    join(host.pluginsDir, "cat", "main.ts"),
  ]);
  assert.deepEqual(c.refusals, []);
  assert.deepEqual(c.warnings, []);
  assert.deepEqual(c.argv.slice(1, 6), [...BASE_FLAGS]);
});

Deno.test("compileSandbox() takes memory_mb from plugins.<name>, then the manifest, then defaults", async (t) => {
  const rows: [string, Record<string, unknown>, number | undefined, number][] = [
    ["config override wins", { plugins: { cat: { memory_mb: 512 } } }, 64, 512],
    ["manifest beats defaults", { defaults: { memory_mb: 300 } }, 64, 64],
    ["defaults last", { defaults: { memory_mb: 300 } }, undefined, 300],
  ];
  await using host = await makeHost();
  for (const [name, config, manifestMb, expected] of rows) {
    await t.step(name, async () => {
      const resources = manifestMb === undefined ? {} : { memory_mb: manifestMb };
      const c = await compile(host, { resources }, config);
      assert.equal(flag(c, "--v8-flags"), `--max-old-space-size=${expected}`);
    });
  }
});

Deno.test("compileSandbox() never emits a forbidden or unlisted flag, even for a manifest asking for everything", async () => {
  await using host = await makeHost();
  const c = await compile(host, {
    capabilities: {
      filesystem: [{
        path: "${DATA_DIR}",
        permissions: ["read", "list", "write", "create", "delete"],
      }],
      network: {
        egress: [{ protocol: "udp", hosts: ["api.example.com"], ports: [443] }],
        ingress: [{ ports: [9000] }],
      },
      process: [{ exec: { command: "/bin/echo", args: ["-n", "*"] } }, { kill: ["children"] }],
      env: ["TZ"],
    },
  }, {
    plugins: { cat: { env: { TZ: "UTC" } } },
    security: { process: { allow: [{ command: "/bin/echo", options: ["-n"] }] } },
  });
  assert.deepEqual(c.refusals, []);
  const allowed =
    /^(?:run|--no-prompt|--no-config|--cached-only|--no-remote|--no-npm|--unstable-net|--(?:import-map|v8-flags|allow-read|allow-write|allow-net|deny-net|allow-env)=.+)$/;
  for (const arg of c.argv.slice(0, -1)) assert.match(arg, allowed);
  for (
    const bad of [
      "-A",
      "--allow-all",
      "--allow-run",
      "--allow-ffi",
      "--allow-sys",
      "--allow-import",
      "--allow-hrtime",
    ]
  ) {
    assert.ok(!c.argv.some((a) => a === bad || a.startsWith(`${bad}=`)), bad);
  }
});

Deno.test("assertSafeArgv() throws SANDBOX_INVARIANT on any forbidden or unexpected argument", async (t) => {
  const ok = [
    "run",
    ...BASE_FLAGS,
    "--import-map=/h/import_map.json",
    "--v8-flags=--max-old-space-size=128",
    "--allow-read=/a,/b",
    "--allow-env=K",
    "/p/main.ts",
  ];
  assertSafeArgv(ok);
  const insert = (arg: string) => [...ok.slice(0, -1), arg, "/p/main.ts"];
  const rows: [string, string[]][] = [
    ["--allow-all", insert("--allow-all")],
    ["-A", insert("-A")],
    ["--allow-run", insert("--allow-run")],
    ["--allow-run=/bin/sh", insert("--allow-run=/bin/sh")],
    ["--allow-ffi", insert("--allow-ffi")],
    ["--allow-sys", insert("--allow-sys")],
    ["--allow-import", insert("--allow-import=evil.com:443")],
    ["--allow-hrtime", insert("--allow-hrtime")],
    ["short -R", insert("-R")],
    ["bare --allow-read", insert("--allow-net")],
    ["empty entry", insert("--allow-write=/a,,/b")],
    ["unlisted flag", insert("--location=https://x")],
    ["more v8 flags", [...ok.slice(0, 7), "--v8-flags=--allow-natives-syntax", ...ok.slice(8)]],
    ["duplicate flag", insert("--allow-read=/etc")],
    ["missing --no-prompt", ok.filter((a) => a !== "--no-prompt")],
    ["missing import map", ok.filter((a) => !a.startsWith("--import-map"))],
    ["relative entrypoint", [...ok.slice(0, -1), "main.ts"]],
    ["not run", ["eval", ...ok.slice(1)]],
  ];
  for (const [name, argv] of rows) {
    await t.step(name, () => {
      assert.throws(
        () => assertSafeArgv(argv),
        (e) => e instanceof SandboxError && e.code === "SANDBOX_INVARIANT",
      );
    });
  }
});

// ----------------------------------------------------------------------------------- env

Deno.test("compileSandbox() passes only the cookie, DENO_DIR, NO_COLOR and declared env with values", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({
    handshake: { magic_cookie_key: "CAT_COOKIE", magic_cookie_value: "meow" },
    capabilities: { env: ["TZ", "API_KEY"] },
  });
  const ctx = host.ctx(plugin, { plugins: { cat: { env: { TZ: "UTC", API_KEY: "s3cret" } } } });
  const c = compileSandbox(plugin, ctx);
  assert.deepEqual(c.env, {
    CAT_COOKIE: "meow",
    DENO_DIR: ctx.denoCacheDir,
    NO_COLOR: "1",
    TZ: "UTC",
    API_KEY: "s3cret",
  });
  assert.equal(flag(c, "--allow-env"), "API_KEY,CAT_COOKIE,TZ");
  assert.deepEqual(c.grants.env, ["API_KEY", "CAT_COOKIE", "TZ"]);
  assert.deepEqual(c.warnings, []);
});

Deno.test("compileSandbox() refuses a handshake cookie named like a variable something reads", async () => {
  await using host = await makeHost();
  for (
    const key of [
      "LD_PRELOAD",
      "DENO_V8_FLAGS",
      "DENO_PLUGIN",
      "HTTPS_PROXY",
      "QT_PLUGIN_PATH",
      "NODE_OPTIONS",
    ]
  ) {
    const c = await compile(host, {
      handshake: { magic_cookie_key: key, magic_cookie_value: "./evil.so" },
    });
    assert.deepEqual(
      c.refusals.map((r) => [r.at, r.grant]),
      [["handshake.magic_cookie_key", key]],
      key,
    );
  }
  for (const key of ["ACME_PLUGIN", "CAT_COOKIE", "PLUGSCONC_PLUGIN", "MY_MAGIC_2"]) {
    const c = await compile(host, {
      handshake: { magic_cookie_key: key, magic_cookie_value: "v" },
    });
    assert.deepEqual(c.refusals, [], key);
  }
});

Deno.test("compileSandbox() warns about a declared env name without a value and leaves it unset", async () => {
  await using host = await makeHost();
  const c = await compile(host, { capabilities: { env: ["TZ"] } });
  assert.equal(c.env.TZ, undefined);
  assert.deepEqual(c.warnings, ["declared env TZ has no value in plugins.cat.env; it is unset"]);
  assert.equal(flag(c, "--allow-env"), "PLUGSCONC_PLUGIN,TZ");
});

Deno.test("compileSandbox() warns about config env values the manifest does not declare and drops them", async () => {
  await using host = await makeHost();
  const c = await compile(host, {}, { plugins: { cat: { env: { SECRET: "x" } } } });
  assert.equal(c.env.SECRET, undefined);
  assert.equal(flag(c, "--allow-env"), "PLUGSCONC_PLUGIN");
  assert.equal(c.warnings.length, 1);
  assert.match(c.warnings[0]!, /plugins\.cat\.env\.SECRET is not declared.*not passed/);
});

Deno.test("compileSandbox() refuses env names that change Deno or the loader, and host-set names", async (t) => {
  await using host = await makeHost();
  for (
    const name of [
      "DENO_PERMISSION_BROKER_PATH",
      "DENO_DIR",
      "deno_cert",
      "LD_PRELOAD",
      "DYLD_INSERT_LIBRARIES",
      "SSLKEYLOGFILE",
      "GLIBC_TUNABLES",
      "PLUGSCONC_PLUGIN",
      "NO_COLOR",
    ]
  ) {
    await t.step(name, async () => {
      const c = await compile(host, { capabilities: { env: ["TZ", name] } }, {
        plugins: { cat: { env: { TZ: "UTC", [name]: "/tmp/evil" } } },
      });
      assert.deepEqual(c.refusals.map((r) => [r.at, r.grant]), [["capabilities.env[1]", name]]);
      assert.notEqual(c.env[name], "/tmp/evil");
      assert.ok(!flag(c, "--allow-env")!.split(",").includes(name) || name === "PLUGSCONC_PLUGIN");
    });
  }
});

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

// ------------------------------------------------------------------------------- network

Deno.test("compileSandbox() turns egress hosts x ports into one sorted --allow-net", async () => {
  await using host = await makeHost();
  const c = await compile(host, {
    capabilities: {
      network: {
        egress: [
          { hosts: ["API.Example.com", "192.0.2.10"], ports: [443, 80] },
          { hosts: ["2001:db8::1", "[2001:DB8::2]", "api.example.com."], ports: [443] },
        ],
      },
    },
  });
  assert.deepEqual(c.refusals, []);
  const expected = [
    "192.0.2.10:443",
    "192.0.2.10:80",
    "[2001:db8::1]:443",
    "[2001:db8::2]:443",
    "api.example.com:443",
    "api.example.com:80",
  ];
  assert.deepEqual(c.grants.net, expected);
  assert.equal(flag(c, "--allow-net"), expected.join(","));
  assert.equal(c.argv.filter((a) => a.startsWith("--allow-net=")).length, 1);
  assert.ok(!c.argv.includes("--unstable-net"));
});

Deno.test("compileSandbox() refuses invalid egress hosts", async (t) => {
  await using host = await makeHost();
  const bad = [
    "*.example.com",
    "*",
    "a,b.com",
    "http://x.com",
    "user@x.com",
    "a b.com",
    "x.com/p",
    "127.1",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "0x7f000001",
    "api.example.com:443",
    "2130706433",
    "256.1.1.1",
    "-bad.com",
    "ex_ample.com",
    "fe80::1%eth0",
    "bücher.de",
    "[::1",
    "1:2:3:4:5:6:7:8:9",
  ];
  for (const h of bad) {
    await t.step(h, async () => {
      const c = await compile(host, egress(["ok.example.com", h]));
      assert.deepEqual(c.refusals.map((r) => r.at), ["capabilities.network.egress[0].hosts[1]"]);
      assert.deepEqual(c.grants.net, ["ok.example.com:443"]);
    });
  }
});

Deno.test("compileSandbox() refuses loopback egress unless security.allow_loopback", async (t) => {
  await using host = await makeHost();
  const hosts = [
    "localhost",
    "db.localhost",
    "LOCALHOST.",
    "127.0.0.1",
    "127.5.6.7",
    "0.0.0.0",
    "::1",
    "[::1]",
    "::",
    "::ffff:127.0.0.1",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
  ];
  for (const h of hosts) {
    await t.step(`${h} refused`, async () => {
      const c = await compile(host, egress([h], [8080]));
      assert.equal(c.refusals.length, 1);
      assert.match(c.refusals[0]!.reason, /loopback.*allow_loopback: true/);
      assert.equal(flag(c, "--allow-net"), undefined);
      assert.match(flag(c, "--deny-net")!, /127\.0\.0\.0\/8/);
    });
  }
  await t.step("allowed, and the loopback deny ranges are dropped", async () => {
    const c = await compile(host, egress(["localhost", "127.0.0.1", "::1"], [8080]), {
      security: { allow_loopback: true },
    });
    assert.deepEqual(c.refusals, []);
    assert.deepEqual(c.grants.net, ["127.0.0.1:8080", "[::1]:8080", "localhost:8080"]);
    assert.equal(flag(c, "--deny-net"), "100.100.100.200,169.254.0.0/16,[fd00:ec2::254]");
  });
});

Deno.test("compileSandbox() refuses link-local and metadata egress unless security.allow_link_local", async (t) => {
  await using host = await makeHost();
  const hosts = [
    "169.254.169.254",
    "169.254.1.1",
    "fe80::1",
    "febf::1",
    "fd00:ec2::254",
    "metadata.google.internal",
    "metadata",
    "::ffff:169.254.169.254",
    "100.100.100.200",
    "64:ff9b::a9fe:a9fe",
  ];
  for (const h of hosts) {
    await t.step(`${h} refused`, async () => {
      const c = await compile(host, egress([h], [80]));
      assert.equal(c.refusals.length, 1);
      assert.match(c.refusals[0]!.reason, /(link-local|metadata).*allow_link_local: true/);
    });
  }
  await t.step("allowed, and the link-local deny ranges are dropped", async () => {
    const c = await compile(host, egress(["169.254.169.254", "fe80::1"], [80]), {
      security: { allow_link_local: true },
    });
    assert.deepEqual(c.refusals, []);
    assert.deepEqual(c.grants.net, ["169.254.169.254:80", "[fe80::1]:80"]);
    assert.equal(flag(c, "--deny-net"), "0.0.0.0/8,127.0.0.0/8,[::1],[::]");
  });
  await t.step("both allowed: no --deny-net at all", async () => {
    const c = await compile(host, {}, {
      security: { allow_link_local: true, allow_loopback: true },
    });
    assert.equal(flag(c, "--deny-net"), undefined);
  });
});

Deno.test("compileSandbox() emits --deny-net even without egress grants", async () => {
  await using host = await makeHost();
  const c = await compile(host, {});
  assert.ok(c.argv.includes(DENY_ALL));
  assert.equal(flag(c, "--allow-net"), undefined);
});

Deno.test("compileSandbox() adds --unstable-net for udp, egress or ingress", async (t) => {
  await using host = await makeHost();
  await t.step("udp egress", async () => {
    const c = await compile(host, egress(["dns.example.com"], [53], "udp"));
    assert.ok(c.argv.includes("--unstable-net"));
  });
  await t.step("udp ingress", async () => {
    const c = await compile(host, {
      capabilities: { network: { ingress: [{ protocol: "udp", ports: [5353] }] } },
    });
    assert.ok(c.argv.includes("--unstable-net"));
  });
  await t.step("tcp only", async () => {
    const c = await compile(host, egress(["api.example.com"]));
    assert.ok(!c.argv.includes("--unstable-net"));
  });
});

Deno.test("compileSandbox() grants ingress ports as 0.0.0.0:<port>", async () => {
  await using host = await makeHost();
  const c = await compile(host, {
    capabilities: {
      network: {
        ingress: [{ ports: [9000, 9001] }],
        egress: [{ hosts: ["a.example.com"], ports: [443] }],
      },
    },
  });
  assert.equal(flag(c, "--allow-net"), "0.0.0.0:9000,0.0.0.0:9001,a.example.com:443");
});

Deno.test("compileSandbox() refuses ingress allowed_origins (strict) and warns (permissive)", async (t) => {
  await using host = await makeHost();
  const manifest = {
    capabilities: {
      network: { ingress: [{ ports: [9000], allowed_origins: ["https://a.example"] }] },
    },
  };
  await t.step("strict", async () => {
    const c = await compile(host, manifest);
    assert.deepEqual(c.refusals.map((r) => r.at), [
      "capabilities.network.ingress[0].allowed_origins",
    ]);
    assert.match(c.refusals[0]!.reason, /cannot restrict peers by origin/);
  });
  await t.step("permissive", async () => {
    const c = await compile(host, manifest, { security: { policy: "permissive" } });
    assert.deepEqual(c.refusals, []);
    assert.match(c.warnings.join("\n"), /Deno cannot restrict peers by origin/);
    assert.deepEqual(c.grants.net, ["0.0.0.0:9000"]);
  });
});

// ------------------------------------------------------------------------------- process

Deno.test("compileSandbox() lists process capabilities as text and never as flags", async () => {
  await using host = await makeHost();
  const c = await compile(host, {
    capabilities: {
      process: [{ exec: { command: "/usr/bin/rsync", args: ["-a", "*", "two words"] } }, {
        kill: ["children"],
      }],
    },
  });
  assert.deepEqual(c.grants.process, ['exec /usr/bin/rsync -a * "two words"', "kill children"]);
  assert.ok(!c.argv.some((a) => a.includes("run=") || a.includes("rsync")));
});

// ---------------------------------------------------------------------------- end to end

Deno.test("compileSandbox() output, run by Deno, grants exactly what it lists", async () => {
  await using host = await makeHost();
  const probe = (dataDir: string) => `
const q = async (d) => (await Deno.permissions.query(d)).state;
const data = ${JSON.stringify(dataDir)};
console.log(JSON.stringify({
  dataRead: await q({ name: "read", path: data }),
  etcRead: await q({ name: "read", path: "/etc/passwd" }),
  dataWrite: await q({ name: "write", path: data + "/x" }),
  codeWrite: await q({ name: "write", path: import.meta.dirname + "/main.ts" }),
  api: await q({ name: "net", host: "api.example.com:443" }),
  apiOtherPort: await q({ name: "net", host: "api.example.com:80" }),
  metadata: await q({ name: "net", host: "169.254.169.254:80" }),
  mappedMetadata: await q({ name: "net", host: "[::ffff:169.254.169.254]:80" }),
  loopback: await q({ name: "net", host: "127.0.0.1:8787" }),
  listen: await q({ name: "net", host: "0.0.0.0:9000" }),
  run: await q({ name: "run", command: "sh" }),
  ffi: await q({ name: "ffi" }),
  sys: await q({ name: "sys", kind: "hostname" }),
  tz: Deno.env.get("TZ"),
  cookie: Deno.env.get("PLUGSCONC_PLUGIN"),
  home: await q({ name: "env", variable: "HOME" }),
}));
`;
  const plugin = await host.plugin({
    capabilities: {
      filesystem: [{ path: "${DATA_DIR}", permissions: ["read", "write"] }],
      network: {
        egress: [{ hosts: ["api.example.com"], ports: [443] }],
        ingress: [{ ports: [9000] }],
      },
      env: ["TZ"],
    },
  });
  const ctx = host.ctx(plugin, { plugins: { cat: { env: { TZ: "Europe/Paris" } } } });
  await Deno.mkdir(ctx.dataDir, { recursive: true });
  await Deno.writeTextFile(plugin.entrypoint, probe(ctx.dataDir));
  const c = compileSandbox(plugin, ctx);
  assert.deepEqual(c.refusals, []);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...c.argv],
    env: c.env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
    dataRead: "granted",
    etcRead: "prompt",
    dataWrite: "granted",
    codeWrite: "prompt",
    api: "granted",
    apiOtherPort: "prompt",
    metadata: "denied",
    mappedMetadata: "denied",
    loopback: "denied",
    listen: "granted",
    run: "prompt",
    ffi: "prompt",
    sys: "prompt",
    tz: "Europe/Paris",
    cookie: "b3f1c9e2-plugsconc-plugin-v1",
    home: "prompt",
  });
});

Deno.test("compileSandbox() tells a plugin with a ${DATA_DIR} grant where it is, and only then", async () => {
  await using host = await makeHost();
  const withData = await compile(host, {
    capabilities: { filesystem: [{ path: "${DATA_DIR}", permissions: ["read", "write"] }] },
  });
  assert.equal(withData.env.PLUGSCONC_DATA_DIR, join(host.dataDir, "plugins", "cat"));
  assert.match(flag(withData, "--allow-env") ?? "", /(^|,)PLUGSCONC_DATA_DIR(,|$)/);
  const without = await compile(host, {});
  assert.equal(without.env.PLUGSCONC_DATA_DIR, undefined);
  assert.doesNotMatch(flag(without, "--allow-env") ?? "", /PLUGSCONC_DATA_DIR/);
});
