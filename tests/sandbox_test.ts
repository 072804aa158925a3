/**
 * Sandbox tests with real plugin processes. An operation the manifest does not grant fails
 * inside the plugin with Deno's `NotCapable`, and the call rejects with a `PluginCallError`
 * naming it; a grant the host will not give (or a module graph that leaves the plugin folder)
 * keeps the plugin from being spawned at all, with a `SandboxError` the host reports.
 *
 * The network tests are in `sandbox_net_test.ts`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { PluginCallError, PluginCrashedError } from "../src/runtime/mod.ts";
import { type TestHome } from "./_helpers.ts";
import {
  addProbe,
  assertNotCapable,
  CAT,
  dataDirOf,
  FETCH,
  HOG,
  IMPORTER,
  PROBE,
  refusal,
  rejection,
  sandboxHome,
  withCapabilities,
} from "./_sandbox.ts";

Deno.test("a plugin cannot read outside its filesystem grant", async () => {
  await using home = await sandboxHome();
  await addProbe(home, { filesystem: [{ path: "${DATA_DIR}", permissions: ["read"] }] });
  const dataDir = dataDirOf(home, "probe");
  await Deno.mkdir(dataDir, { recursive: true });
  const inside = join(dataDir, "inside.txt");
  await Deno.writeTextFile(inside, "granted");
  const outside = join(home.dir, "outside.txt");
  await Deno.writeTextFile(outside, "not granted");
  await using host = await home.startHost();

  assert.equal(await host.call("probe", "read", { path: inside }), "granted");
  assert.match(await assertNotCapable(host.call("probe", "read", { path: outside })), /read/);
  await assertNotCapable(host.call("probe", "read", { path: home.configPath }));
  // `..` does not climb out of the grant: Deno normalises the path before checking it.
  await assertNotCapable(
    host.call("probe", "read", { path: join(dataDir, "..", "..", "..", "outside.txt") }),
  );
  await assertNotCapable(host.call("probe", "read", { path: "/etc/hostname" }));
});

Deno.test("a plugin cannot write to a folder it was granted read-only", async () => {
  await using home = await sandboxHome();
  const dir = await addProbe(home, { filesystem: [{ path: "./assets", permissions: ["read"] }] });
  const note = join(dir, "assets", "note.txt");
  await Deno.mkdir(join(dir, "assets"));
  await Deno.writeTextFile(note, "original");
  await using host = await home.startHost();

  assert.equal(await host.call("probe", "read", { path: note }), "original");
  const message = await assertNotCapable(
    host.call("probe", "write", { path: note, text: "changed" }),
  );
  assert.match(message, /write/);
  await assertNotCapable(
    host.call("probe", "write", { path: join(dir, "assets", "new.txt"), text: "x" }),
  );
  assert.equal(await Deno.readTextFile(note), "original");
  await assert.rejects(Deno.stat(join(dir, "assets", "new.txt")), Deno.errors.NotFound);
});

Deno.test("a plugin sees no host env var, only the declared ones the config supplies", async () => {
  const suffix = crypto.randomUUID().replaceAll("-", "").toUpperCase();
  const hidden = `PLUGSCONC_TEST_HIDDEN_${suffix}`;
  const declared = `PLUGSCONC_TEST_DECLARED_${suffix}`;
  Deno.env.set(hidden, "host secret");
  Deno.env.set(declared, "host value, never passed");
  try {
    await using home = await sandboxHome({
      plugins: { probe: { env: { GREETING: "hello from config" } } },
    });
    await addProbe(home, { env: ["GREETING", declared] });
    await using host = await home.startHost();

    // Not declared: reading it fails inside the plugin, and the permission is not granted.
    await assertNotCapable(host.call("probe", "env", { name: hidden }));
    assert.notEqual(await host.call("probe", "envQuery", { name: hidden }), "granted");
    await assertNotCapable(host.call("probe", "env", { name: "HOME" }));
    await assertNotCapable(host.call("probe", "env", { name: "PATH" }));
    // Declared but without a value in the config: readable, and unset (the env is cleared).
    assert.equal(await host.call("probe", "envQuery", { name: declared }), "granted");
    assert.equal(await host.call("probe", "env", { name: declared }), null);
    // Declared with a value from plugins.probe.env: visible.
    assert.equal(await host.call("probe", "env", { name: "GREETING" }), "hello from config");
    assert.equal(host.sandbox("probe")?.env[hidden], undefined);
  } finally {
    Deno.env.delete(hidden);
    Deno.env.delete(declared);
  }
});

Deno.test({
  name:
    "the plugin process's whole environment is the compiled one: no host DENO_* or LD_* variable",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const names = ["DENO_PLUGSCONC_TEST_SECRET", "LD_LIBRARY_PATH"];
    const before = names.map((n) => Deno.env.get(n));
    Deno.env.set(names[0]!, "host secret");
    Deno.env.set(names[1]!, "/nonexistent/plugsconc-test");
    try {
      await using home = await sandboxHome();
      await addProbe(home, {});
      await using host = await home.startHost();
      const pid = host.plugins()[0]!.pid!;
      const environ = (await Deno.readTextFile(`/proc/${pid}/environ`)).split("\0").filter(Boolean);
      const keys = environ.map((kv) => kv.slice(0, kv.indexOf("="))).sort();
      // Besides the compiled env, only the host's permission-audit FIFO (issue 13), which the
      // plugin cannot read (no --allow-env for it), and the path of its protocol socket.
      assert.deepEqual(
        keys.filter((k) => k !== "DENO_AUDIT_PERMISSIONS" && k !== "PLUGSCONC_SOCKET"),
        Object.keys(host.sandbox("probe")!.env).sort(),
      );
      const socket = environ.find((kv) => kv.startsWith("PLUGSCONC_SOCKET="))?.slice(17);
      assert.match(socket ?? "", /^\/tmp\/plugsconc-[^/]+\/s$/);
      for (const n of names) assert.ok(!keys.includes(n), `${n} reached the plugin`);
      assert.ok(keys.includes("DENO_DIR") && keys.includes("NO_COLOR"), keys.join(" "));
      assert.ok(!keys.includes("HOME") && !keys.includes("PATH"), keys.join(" "));
    } finally {
      names.forEach((n, i) =>
        before[i] === undefined ? Deno.env.delete(n) : Deno.env.set(n, before[i]!)
      );
    }
  },
});

Deno.test("a plugin cannot spawn a process, even one its manifest declares", async () => {
  await using home = await sandboxHome();
  await addProbe(home, { process: [{ exec: { command: "/bin/true" } }] });
  await using host = await home.startHost();

  const message = await assertNotCapable(host.call("probe", "spawn", { cmd: "/bin/true" }));
  assert.match(message, /run/);
  await assertNotCapable(host.call("probe", "spawn", { cmd: "/bin/sh" }));
  // Process capabilities are served by the host, never turned into a flag.
  const argv = host.sandbox("probe")?.argv ?? [];
  assert.ok(!argv.some((a) => a.startsWith("--allow-run") || a === "-A"), argv.join(" "));
});

Deno.test("a static import of a file outside the plugin folder is refused before spawn", async () => {
  await using home = await sandboxHome();
  const secret = join(home.dir, "secret.txt");
  await Deno.writeTextFile(secret, "top secret");
  const dir = await addProbe(
    home,
    { filesystem: [{ path: "${DATA_DIR}", permissions: ["read", "write", "create"] }] },
    "sneaky",
  );
  // If it ever ran, it would leave the secret in its data folder.
  await Deno.writeTextFile(
    join(dir, "main.ts"),
    [
      `import { serve } from "plugsconc/sdk";`,
      `import secret from ${JSON.stringify(secret)} with { type: "text" };`,
      `Deno.writeTextFileSync(Deno.env.get("PLUGSCONC_DATA_DIR") + "/ran.txt", secret);`,
      `serve({ methods: { secret: () => secret } });`,
      "",
    ].join("\n"),
  );
  await home.addPlugin(CAT);
  await using host = await home.startHost();

  const error = await refusal(host, "sneaky");
  assert.equal(error.code, "MODULE_OUTSIDE_PLUGIN");
  assert.equal(error.modules.length, 1);
  assert.equal(error.modules[0]?.path, secret);
  assert.ok(error.message.includes(secret), error.message);
  await assert.rejects(
    Deno.stat(join(dataDirOf(home, "sneaky"), "ran.txt")),
    Deno.errors.NotFound,
  );
  assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" });
});

Deno.test("a dynamic import outside the filesystem grant fails inside the plugin", async () => {
  await using home = await sandboxHome();
  const secret = join(home.dir, "secret.json");
  await Deno.writeTextFile(secret, JSON.stringify({ secret: "top" }));
  await home.addPlugin(IMPORTER, {
    manifest: withCapabilities({ filesystem: [{ path: "${DATA_DIR}", permissions: ["read"] }] }),
  });
  const dataDir = dataDirOf(home, "importer");
  await Deno.mkdir(dataDir, { recursive: true });
  const inside = join(dataDir, "inside.json");
  await Deno.writeTextFile(inside, JSON.stringify({ ok: true }));
  // A module inside the grant whose own static import leaves it (a plugin with write access
  // to its data folder could write one).
  const relay = join(dataDir, "relay.ts");
  await Deno.writeTextFile(
    relay,
    `import s from ${JSON.stringify(secret)} with { type: "json" };\nexport const secret = s;\n`,
  );
  await using host = await home.startHost();

  assert.deepEqual(await host.call("importer", "importJson", { path: inside }), { ok: true });
  // Deno reports these as TypeError, not NotCapable, but the reason is the same.
  for (const [method, path] of [["importJson", secret], ["importModule", relay]] as const) {
    const error = await rejection(host.call("importer", method, { path }));
    assert.ok(error instanceof PluginCallError, `got ${error}`);
    assert.ok(error.message.includes(`Requires read access to "${secret}"`), error.message);
  }
});

Deno.test("a symlink in a granted folder that leads outside it is refused before spawn", async () => {
  await using home = await sandboxHome();
  const secret = join(home.dir, "secret.txt");
  await Deno.writeTextFile(secret, "top secret");
  // In the plugin folder.
  const dir = await addProbe(home, { filesystem: [{ path: "./assets", permissions: ["read"] }] });
  await Deno.mkdir(join(dir, "assets", "deep"), { recursive: true });
  await Deno.writeTextFile(join(dir, "assets", "fine.txt"), "fine");
  const pluginLink = join(dir, "assets", "deep", "leak.txt");
  await Deno.symlink(secret, pluginLink);
  // In the plugin's ${DATA_DIR}, placed before the host starts.
  await addProbe(
    home,
    { filesystem: [{ path: "${DATA_DIR}", permissions: ["read"] }] },
    "probe-data",
  );
  const dataLink = join(dataDirOf(home, "probe-data"), "etc");
  await Deno.mkdir(dataDirOf(home, "probe-data"), { recursive: true });
  await Deno.symlink(home.dir, dataLink);
  await home.addPlugin(CAT);
  await using host = await home.startHost();

  const cases = [
    { name: "probe", link: pluginLink, target: secret },
    { name: "probe-data", link: dataLink, target: home.dir },
  ];
  for (const { name, link, target } of cases) {
    const error = await refusal(host, name);
    assert.equal(error.code, "GRANT_REFUSED");
    assert.equal(error.refusals.length, 1, error.message);
    assert.equal(error.refusals[0]?.at, "capabilities.filesystem[0]");
    assert.ok(error.message.includes(`${link} is a symlink to ${target}`), error.message);
  }
  assert.deepEqual(await host.call("cat", "speak", {}), { sound: "meow" });
});

Deno.test("grants of / and /proc are refused and the host still runs the other plugins", async () => {
  await using home = await sandboxHome();
  await addProbe(home, {
    filesystem: [
      { path: "/", permissions: ["read"] },
      { path: "/proc", permissions: ["read"] },
      { path: "/proc/self/environ", permissions: ["read"] },
    ],
  });
  await home.addPlugin(CAT);
  await using host = await home.startHost();

  const error = await refusal(host, "probe");
  assert.equal(error.code, "GRANT_REFUSED");
  assert.deepEqual(error.refusals.map((r) => r.at), [
    "capabilities.filesystem[0]",
    "capabilities.filesystem[1]",
    "capabilities.filesystem[2]",
  ]);
  assert.match(error.message, /root or a system folder/);
  assert.equal(host.plugins().find((p) => p.name === "cat")?.state, "ready");
  assert.deepEqual(await host.call("cat", "speak", { loud: true }), { sound: "MEOW!" });
});

/** A probe granted `./assets` (a folder holding `sub/deep.txt`) with `recursive: false`. */
async function homeWithShallowGrant(policy: "strict" | "permissive"): Promise<TestHome> {
  const home = await sandboxHome({ security: { policy } });
  const dir = await addProbe(home, {
    filesystem: [{ path: "./assets", permissions: ["read"], recursive: false }],
  });
  await Deno.mkdir(join(dir, "assets", "sub"), { recursive: true });
  await Deno.writeTextFile(join(dir, "assets", "sub", "deep.txt"), "below the grant");
  return home;
}

Deno.test("recursive: false on a directory is refused under policy strict", async () => {
  await using home = await homeWithShallowGrant("strict");
  await using host = await home.startHost();

  const error = await refusal(host, "probe");
  assert.equal(error.code, "GRANT_REFUSED");
  assert.match(error.message, /recursive: false cannot be enforced/);
  assert.match(error.message, /security\.policy: permissive/);
});

Deno.test("recursive: false on a directory is widened with a warning under policy permissive", async () => {
  await using home = await homeWithShallowGrant("permissive");
  await using host = await home.startHost();

  assert.equal(host.plugins().find((p) => p.name === "probe")?.state, "ready");
  const warnings = host.sandbox("probe")?.warnings ?? [];
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(warnings[0]!, /capabilities\.filesystem\[0\]: recursive: false widened/);
  // The warning is true: Deno grants the whole tree.
  const deep = join(home.pluginsDir, "probe", "assets", "sub", "deep.txt");
  assert.equal(await host.call("probe", "read", { path: deep }), "below the grant");
});

Deno.test("the manifest's memory_mb becomes V8's heap limit and a plugin past it crashes", async () => {
  await using home = await sandboxHome({
    plugins: { hog: { restart: { max_restarts: 0 } } },
  });
  await home.addPlugin(PROBE);
  await home.addPlugin(HOG);
  await using host = await home.startHost();

  assert.ok(host.sandbox("probe")?.argv.includes("--v8-flags=--max-old-space-size=64"));
  assert.ok(host.sandbox("hog")?.argv.includes("--v8-flags=--max-old-space-size=48"));
  const error = await rejection(host.call("hog", "hog", {}, { timeoutMs: 30_000 }));
  assert.ok(error instanceof PluginCrashedError, `got ${error}`);
  assert.equal(error.plugin, "hog");
  assert.equal(error.method, "hog");
  assert.ok(
    // V8 words it either way, depending on how the last collections went.
    error.stderr.some((line) =>
      /out of memory: (Reached heap limit|Ineffective mark-compacts near heap limit)/.test(line)
    ),
    error.stderr.join("\n"),
  );
  // The other plugin is untouched.
  assert.equal(typeof await host.call("probe", "memory"), "number");
});

Deno.test("the fetch plugin fetches from its granted loopback port and nowhere else", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      new Response(`hello from ${new URL(req.url).pathname}`, {
        headers: { "content-type": "text/plain" },
      }),
  );
  using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = server.addr;
  await using home = await sandboxHome({ security: { allow_loopback: true } });
  await home.addPlugin(FETCH, {
    manifest: (text) => {
      assert.match(text, /hosts: \[example\.com\]/);
      assert.match(text, /ports: \[443\]/);
      return text.replace("hosts: [example.com]", "hosts: [127.0.0.1]")
        .replace("ports: [443]", `ports: [${port}]`);
    },
  });
  await using host = await home.startHost();

  assert.deepEqual(await host.call("fetch", "get", { url: `http://127.0.0.1:${port}/greeting` }), {
    status: 200,
    contentType: "text/plain",
    body: "hello from /greeting",
    truncated: false,
  });
  const message = await assertNotCapable(
    host.call("fetch", "get", { url: `http://127.0.0.1:${other.addr.port}/` }),
  );
  assert.match(message, new RegExp(`127\\.0\\.0\\.1:${other.addr.port}`));
  await assertNotCapable(host.call("fetch", "get", { url: `http://localhost:${port}/` }));
});
