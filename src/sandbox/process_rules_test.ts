import assert from "node:assert/strict";
import { join } from "node:path";
import { compileSandbox, identifyCommand, launcherName } from "./mod.ts";
import { makeHost, type TestHost } from "./_testing.ts";
import type { CompiledSandbox } from "./types.ts";

type Exec = { command: string; args?: string[] };

async function compile(
  host: TestHost,
  execs: Exec[],
  config: Record<string, unknown> = {},
): Promise<CompiledSandbox> {
  const plugin = await host.plugin({
    capabilities: { process: execs.map((e) => ({ exec: { args: [], ...e } })) },
  });
  return compileSandbox(plugin, host.ctx(plugin, config));
}

const PERMISSIVE = { security: { policy: "permissive" } };

/**
 * Launchers under names that say nothing: a symlink, a copy, a hard link, a wrapper script,
 * a text file without `#!`, and the wrappers that exec their argument.
 */
async function disguises(host: TestHost): Promise<{ name: string; command: string }[]> {
  const bin = join(host.root, "bin");
  await Deno.mkdir(bin, { recursive: true });
  const rows: { name: string; command: string }[] = [];
  const link = join(bin, "list-files");
  await Deno.symlink("/usr/bin/bash", link);
  rows.push({ name: "a symlink to bash", command: link });
  const copy = join(bin, "report");
  await Deno.copyFile("/usr/bin/perl", copy);
  await Deno.chmod(copy, 0o755);
  rows.push({ name: "a copy of perl", command: copy });
  const wrapper = join(bin, "safe-tool");
  await Deno.writeTextFile(wrapper, '#!/bin/sh\nexec "$@"\n');
  await Deno.chmod(wrapper, 0o755);
  rows.push({ name: "a wrapper script", command: wrapper });
  const bare = join(bin, "plain-text");
  await Deno.writeTextFile(bare, "id > /tmp/owned\n");
  await Deno.chmod(bare, 0o755);
  rows.push({ name: "a text file without #! (run by /bin/sh)", command: bare });
  rows.push({ name: "ionice", command: "/usr/bin/ionice" });
  rows.push({ name: "taskset", command: "/usr/bin/taskset" });
  rows.push({ name: "the dynamic loader", command: "/lib64/ld-linux-x86-64.so.2" });
  rows.push({ name: "the host's own deno", command: Deno.execPath() });
  return rows.filter((r) => Deno.statSync(r.command).isFile);
}

Deno.test("a launcher in disguise is identified by the file, not by its name", async () => {
  await using host = await makeHost();
  const rows = await disguises(host);
  assert.ok(rows.length >= 6, `too few disguises exist on this machine: ${rows.length}`);
  for (const row of rows) {
    const id = identifyCommand(row.command);
    assert.ok(typeof id !== "string", `${row.name}: ${id}`);
    assert.ok(id.launcher !== undefined, `${row.name} (${row.command}) was not seen as a launcher`);
  }
  const copy = identifyCommand(join(host.root, "bin", "report"));
  assert.ok(typeof copy !== "string");
  assert.match(copy.launcher!, /a copy of \/usr\/bin\/perl/);
  const plain = identifyCommand("/bin/echo");
  assert.ok(typeof plain !== "string");
  assert.equal(plain.launcher, undefined);
  assert.equal(plain.real, "/usr/bin/echo");
});

Deno.test("a hard link to an interpreter is the same file, so the same launcher", async (t) => {
  await using host = await makeHost();
  const target = join(host.root, "nightly");
  let linked = true;
  try {
    await Deno.link("/usr/bin/perl", target);
  } catch {
    linked = false; // another file system than /usr: no hard link can exist there
  }
  await t.step({
    name: "strict refuses it, with spelled-out arguments too",
    ignore: !linked,
    fn: async () => {
      const c = await compile(host, [{ command: target, args: ["-e", "print 1"] }]);
      assert.equal(c.refusals.length, 1);
      assert.match(c.refusals[0]!.reason, /same file as \/usr\/bin\/perl|a launcher, perl/);
    },
  });
});

Deno.test("strict refuses every launcher disguise at compile time; permissive warns", async () => {
  await using host = await makeHost();
  const rows = await disguises(host);
  const execs = rows.map((r) => ({ command: r.command, args: ["--version"] }));
  const strict = await compile(host, execs);
  assert.deepEqual(
    strict.refusals.map((r) => r.at),
    rows.map((_, i) => `capabilities.process[${i}].exec`),
  );
  for (const r of strict.refusals) {
    assert.match(r.reason, /Its arguments are code/);
    assert.match(r.reason, /security\.process\.allow/);
  }
  assert.deepEqual(strict.commands, []);
  const permissive = await compile(host, execs, PERMISSIVE);
  assert.deepEqual(permissive.refusals, []);
  assert.equal(
    permissive.warnings.filter((w) => /Its arguments are code/.test(w)).length,
    rows.length,
  );
  assert.equal(permissive.commands.length, rows.length);
});

Deno.test("pseudo paths such as /proc/self/exe are refused under every policy", async () => {
  await using host = await makeHost();
  const execs = [
    { command: "/proc/self/exe", args: ["eval", "1"] },
    { command: "/dev/fd/0" },
    { command: "/proc/1/root/bin/sh" },
  ];
  for (const config of [{}, PERMISSIVE]) {
    const c = await compile(host, execs, config);
    assert.equal(c.refusals.length, 3, JSON.stringify(c.refusals));
    for (const r of c.refusals) assert.match(r.reason, /pseudo file system/);
  }
});

Deno.test("under strict a wildcard needs the host's allow list, and options next to it must be listed", async (t) => {
  await using host = await makeHost();
  await t.step("a wildcard for a command the host does not list is refused", async () => {
    const c = await compile(host, [{ command: "/bin/echo", args: ["*"] }]);
    assert.equal(c.refusals.length, 1);
    assert.match(c.refusals[0]!.reason, /wildcard argument/);
  });
  await t.step("listed (under another path to the same file), it passes", async () => {
    const c = await compile(host, [{ command: "/usr/bin/echo", args: ["*"] }], {
      security: { process: { allow: [{ command: "/bin/echo" }] } },
    });
    assert.deepEqual(c.refusals, []);
    assert.deepEqual(c.commands.map((x) => [x.command, x.real]), [[
      "/usr/bin/echo",
      "/usr/bin/echo",
    ]]);
  });
  await t.step(
    "a literal option next to a wildcard is refused unless the entry lists it",
    async () => {
      const allow = {
        security: { process: { allow: [{ command: "/bin/echo", options: ["-n"] }] } },
      };
      const refused = await compile(host, [{ command: "/bin/echo", args: ["-e", "*"] }], allow);
      assert.equal(refused.refusals.length, 1);
      assert.match(refused.refusals[0]!.reason, /option -e may make/);
      const ok = await compile(host, [{ command: "/bin/echo", args: ["-n", "--", "*"] }], allow);
      assert.deepEqual(ok.refusals, []);
    },
  );
  await t.step("${DATA_DIR}/* is a wildcard too", async () => {
    const c = await compile(host, [{ command: "/bin/cat", args: ["${DATA_DIR}/*"] }]);
    assert.match(c.refusals[0]?.reason ?? "", /wildcard argument/);
  });
  await t.step("a listed launcher passes, with the options listed", async () => {
    const c = await compile(host, [{ command: "/bin/sh", args: ["-c", "*"] }], {
      security: { process: { allow: [{ command: "/usr/bin/dash", options: ["-c"] }] } },
    });
    assert.deepEqual(c.refusals, []);
    assert.match(c.commands[0]?.launcher ?? "", /dash/);
  });
  await t.step("permissive warns about an unlisted option next to a wildcard", async () => {
    const c = await compile(host, [{ command: "/bin/echo", args: ["-e", "*"] }], PERMISSIVE);
    assert.deepEqual(c.refusals, []);
    assert.equal(c.warnings.filter((w) => /option -e may make/.test(w)).length, 1);
  });
});

Deno.test("a program spelled out in full passes strict; a missing one is refused (warned under permissive)", async () => {
  await using host = await makeHost();
  const ok = await compile(host, [{ command: "/bin/echo", args: ["hello"] }]);
  assert.deepEqual(ok.refusals, []);
  assert.deepEqual(ok.warnings, []);
  const missing = [{ command: "/usr/bin/no-such-program-here" }];
  const strict = await compile(host, missing);
  assert.match(strict.refusals[0]?.reason ?? "", /cannot be resolved/);
  const permissive = await compile(host, missing, PERMISSIVE);
  assert.deepEqual(permissive.refusals, []);
  assert.match(permissive.warnings[0] ?? "", /cannot be resolved/);
});

Deno.test("a command in a plugin or data folder, or in a folder others can write, is refused", async () => {
  await using host = await makeHost();
  const open = join(host.root, "open-bin");
  await Deno.mkdir(open);
  await Deno.chmod(open, 0o777);
  await Deno.copyFile("/bin/echo", join(open, "hello"));
  await Deno.chmod(join(open, "hello"), 0o755);
  const inData = join(host.dataDir, "tool");
  await Deno.copyFile("/bin/echo", inData);
  await Deno.chmod(inData, 0o755);
  for (const config of [{}, PERMISSIVE]) {
    const c = await compile(host, [{ command: join(open, "hello") }, { command: inData }], config);
    assert.equal(c.refusals.length, 2);
    assert.match(c.refusals[0]!.reason, /writable by others/);
    assert.match(c.refusals[1]!.reason, /where plugins' code and data live/);
  }
});

Deno.test("a literal argument naming the plugins' or data folders, or climbing with .., is refused under strict", async () => {
  await using host = await makeHost();
  const rows = [
    join(host.dataDir, "plugins", "cat", "cmds.sql"),
    `.read ${join(host.pluginsDir, "cat", "x.sql")}`,
    "../../plugins/cat/x.sql",
    `--init=${host.dataDir}`,
  ];
  const execs = rows.map((a) => ({ command: "/bin/cat", args: [a] }));
  const strict = await compile(host, execs);
  assert.equal(strict.refusals.length, rows.length, JSON.stringify(strict.refusals));
  for (const r of strict.refusals) assert.match(r.reason, /name the plugins' or data folders/);
  const permissive = await compile(host, execs, PERMISSIVE);
  assert.deepEqual(permissive.refusals, []);
  assert.equal(permissive.warnings.length, rows.length);
  // A path that merely starts like the data folder is another folder.
  const near = await compile(host, [{ command: "/bin/cat", args: [`${host.dataDir}-old/x`] }]);
  assert.deepEqual(near.refusals, []);
});

Deno.test("under strict every literal option needs the operator's entry, wildcard or not (tar --to-command=sh runs a shell)", async () => {
  await using host = await makeHost();
  const execs = [
    { command: "/usr/bin/tar", args: ["-x", "-f", "-", "--to-command=sh"] },
    { command: "/usr/bin/split", args: ["--filter=sh", "-"] },
    { command: "/bin/echo", args: ["-n", "hello"] },
  ];
  const strict = await compile(host, execs);
  assert.equal(strict.refusals.length, 3, JSON.stringify(strict.refusals));
  for (const r of strict.refusals) assert.match(r.reason, /may make .* run a command/);
  const listed = await compile(host, [{ command: "/bin/echo", args: ["-n", "hello"] }], {
    security: { process: { allow: [{ command: "/bin/echo", options: ["-n"] }] } },
  });
  assert.deepEqual(listed.refusals, []);
  assert.equal(listed.commands[0]?.listed, true);
  // Permissive stays quiet about options without a wildcard, as before.
  const permissive = await compile(host, [execs[2]!], PERMISSIVE);
  assert.deepEqual(permissive.warnings, []);
});

Deno.test("a literal path into the data folder is found however it is spelled", async () => {
  await using host = await makeHost();
  const link = join(host.root, "innocent");
  await Deno.symlink(host.dataDir, link);
  const rows = [
    `${host.root}/./data/plugins/cat/p.so`,
    `${host.root}//data/plugins/cat/p.so`,
    `${link}/plugins/cat/p.so`,
    `-D${host.dataDir}/plugins/cat/p.so`,
  ];
  const c = await compile(host, rows.map((a) => ({ command: "/bin/cat", args: [a] })));
  assert.equal(c.refusals.length, rows.length, JSON.stringify(c.refusals));
});

Deno.test("interpreters with version suffixes and wrapped binaries are launchers by name", () => {
  for (
    const name of [
      "perl5.36-x86_64-linux-gnu",
      "python3.7m",
      "python3.13t",
      "lli",
      "valgrind.bin",
      "gio-launch-desktop",
      "msgexec",
    ]
  ) {
    assert.ok(launcherName(name) !== undefined, name);
  }
  for (const name of ["perldoc", "cat", "sha256sum", "base64", "tar"]) {
    assert.equal(launcherName(name), undefined, name);
  }
});

Deno.test("an entry of security.process.allow that names no file is a warning, not silence", async () => {
  await using host = await makeHost();
  const c = await compile(host, [{ command: "/bin/echo", args: ["*"] }], {
    security: { process: { allow: [{ command: "/usr/bin/no-such-tool" }] } },
  });
  assert.match(
    c.warnings.join("\n"),
    /security\.process\.allow\[0\] is ignored: .*cannot be resolved/,
  );
  assert.equal(c.refusals.length, 1);
});
