import assert from "node:assert/strict";
import { join } from "node:path";
import { assertSafeArgv, BASE_FLAGS, compileSandbox, SandboxError } from "./mod.ts";
import { compile, DENY_ALL, flag, makeHost } from "./_testing.ts";

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
