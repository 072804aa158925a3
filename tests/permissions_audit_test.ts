/**
 * The permission audit with real plugin processes: which declared grants a plugin used, what it
 * was denied, that the audit FIFO is out of the plugin's reach, and learn mode's proposal.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { AuditTrail } from "../src/audit/mod.ts";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { cliOk, FIXTURE_PLUGINS, makeHome, waitFor } from "./_helpers.ts";

const READER = join(FIXTURE_PLUGINS, "audit_reader");
/** A control character other than the newline: what plugin-supplied text must never print. */
// deno-lint-ignore no-control-regex -- matching raw control characters is the point
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

async function home() {
  const h = await makeHome();
  await h.addPlugin(READER, { as: "audit-reader" });
  // /etc is an allowed root so that learn mode can propose /etc/hostname (and must still refuse /proc).
  await h.writeConfig({
    security: { allowed_roots: [join(h.dir, "plugins"), join(h.dir, "data"), "/etc"] },
  });
  return h;
}

Deno.test("`plugins permissions` shows a granted path never read as unused and a denied read", async () => {
  await using h = await home();
  {
    await using host = await h.startHost();
    assert.equal(await host.call("audit-reader", "readA"), "a\n");
    assert.equal(await host.call("audit-reader", "tryHostname"), "NotCapable");
  }
  const io = memoryIo();
  const code = await runCli(
    ["--config", h.configPath, "plugins", "permissions", "audit-reader", "--json"],
    io,
  );
  assert.equal(code, 0, io.stderr);
  const report = JSON.parse(io.stdout);
  const [a, b] = report.grants;
  assert.equal(a.declared, "./data/a.txt");
  assert.equal(a.used, true);
  assert.ok(a.count >= 1);
  assert.equal(typeof a.lastUse, "string");
  assert.equal(b.declared, "./data/b.txt");
  assert.equal(b.used, false);
  assert.equal(b.count, 0);
  assert.deepEqual(
    report.denied.map((d: { permission: string; value: string; count: number }) => [
      d.permission,
      d.value,
      d.count,
    ]),
    [["read", "/etc/hostname", 1]],
  );
  const text = memoryIo();
  assert.equal(
    await runCli(["--config", h.configPath, "plugins", "permissions", "audit-reader"], text),
    0,
  );
  assert.match(text.stdout, /UNUSED read {2}"\.\/data\/b\.txt"/);
  assert.match(text.stdout, /read {2}"\/etc\/hostname": 1 time\(s\)/);
  assert.doesNotMatch(text.stdout, /INCOMPLETE/);
  // The denied attempt is an audit event too.
  using trail = AuditTrail.open(join(h.dir, "data/audit.db"), { readOnly: true });
  const denied = trail.query({ kind: "permission.denied", plugin: "audit-reader" });
  assert.equal(denied.length, 1);
  assert.deepEqual(JSON.parse(denied[0]!.detail), { permission: "read", value: "/etc/hostname" });
});

Deno.test("the audit FIFO is neither readable nor writable from inside the plugin", async () => {
  await using h = await home();
  await using host = await h.startHost();
  const dir = join(h.dir, "data/permission_audit");
  const fifos = [...Deno.readDirSync(dir)].map((e) => join(dir, e.name));
  assert.equal(fifos.length, 1);
  const path = fifos[0]!;
  assert.ok(Deno.statSync(path).isFifo);
  const seen = await host.call("audit-reader", "probe", { path }) as Record<string, string>;
  assert.notEqual(seen.read, "granted");
  assert.notEqual(seen.write, "granted");
  assert.equal(seen.attempt, "NotCapable");
  assert.equal(seen.writeAttempt, "NotCapable");
  assert.notEqual(seen.env, "granted");
  // The FIFO is not a flag of the plugin's argv either.
  assert.ok(host.sandbox("audit-reader")!.argv.every((a) => !a.includes("permission_audit")));
});

Deno.test("`plugins learn` proposes removing the unused grant, adding /etc/hostname, and refuses /proc", async () => {
  await using h = await home();
  const calls = join(h.dir, "calls.jsonl");
  await Deno.writeTextFile(
    calls,
    '{"method":"readA"}\n{"method":"tryHostname"}\n{"method":"tryProc"}\n',
  );
  const io = memoryIo();
  const code = await runCli(
    ["--config", h.configPath, "plugins", "learn", "audit-reader", "--calls", calls, "--json"],
    io,
  );
  assert.equal(code, 0, io.stderr);
  const p = JSON.parse(io.stdout);
  assert.deepEqual(p.remove, ["capabilities.filesystem[1]"]);
  assert.deepEqual(p.add.map((a: { entry: unknown }) => a.entry), [
    { path: "/etc/hostname", permissions: ["read"] },
  ]);
  assert.equal(p.refused.length, 1);
  assert.equal(p.refused[0].value, "/proc/self/status");
  assert.match(p.refused[0].reason, /proc/);
  assert.equal(
    p.yaml,
    "capabilities:\n" +
      "  filesystem:\n" +
      '    - { path: "./data/a.txt", permissions: ["read"] }\n' +
      '    # REMOVE (never used): - { path: "./data/b.txt", permissions: ["read"] }\n' +
      '    - { path: "/etc/hostname", permissions: ["read"] }  # ADD: denied 1 time(s)\n' +
      `# REFUSED (not proposed): read "/proc/self/status" (1 time(s)): ${p.refused[0].reason}\n`,
  );
  // The manifest is untouched.
  const manifest = await Deno.readTextFile(join(h.dir, "plugins/audit-reader/manifest.yaml"));
  assert.doesNotMatch(manifest, /hostname/);
});

Deno.test("`plugins learn` without --calls counts what the plugin checks while another host serves it", async () => {
  await using h = await home();
  await using host = await h.startHost();
  const stop = new AbortController();
  const io = memoryIo(stop.signal);
  const learning = runCli(
    ["--config", h.configPath, "plugins", "learn", "audit-reader", "--json"],
    io,
  );
  assert.ok(await waitFor(() => io.stderr.includes("Ctrl-C"), 10_000), io.stderr);
  assert.equal(await host.call("audit-reader", "tryHostname"), "NotCapable");
  // The serving host writes its totals once a second; learn reads them at the stop.
  using trail = AuditTrail.open(join(h.dir, "data/audit.db"), { readOnly: true });
  assert.ok(await waitFor(() => trail.usage("audit-reader").some((e) => !e.granted), 10_000));
  stop.abort();
  assert.equal(await learning, 0, io.stderr);
  const p = JSON.parse(io.stdout);
  assert.deepEqual(p.add.map((a: { entry: unknown }) => a.entry), [
    { path: "/etc/hostname", permissions: ["read"] },
  ]);
  assert.deepEqual(p.remove, ["capabilities.filesystem[0]", "capabilities.filesystem[1]"]);
});

Deno.test("a denied read after 1000 distinct granted checks is still reported, and the report says what it did not keep", async () => {
  await using h = await makeHome();
  await h.addPlugin(join(FIXTURE_PLUGINS, "audit_flood"), { as: "audit-flood" });
  await h.writeConfig({
    security: { allowed_roots: [join(h.dir, "plugins"), join(h.dir, "data")] },
  });
  let metrics = "";
  {
    await using host = await h.startHost();
    assert.equal(await host.call("audit-flood", "flood"), "NotCapable");
    await host.stop();
    metrics = host.metrics.prometheus();
  }
  assert.match(
    metrics,
    /plugsconc_permission_audit_dropped_total\{plugin="audit-flood",reason="overflow"\} [1-9]/,
  );
  const io = await cliOk([
    "--config",
    h.configPath,
    "plugins",
    "permissions",
    "audit-flood",
    "--json",
  ]);
  const report = JSON.parse(io.stdout);
  assert.deepEqual(
    report.denied.map((d: { permission: string; value: string }) => [d.permission, d.value]),
    [["read", "/etc/hostname"]],
  );
  assert.ok(report.incomplete.overflow > 0, JSON.stringify(report.incomplete));
  assert.equal(report.incomplete.deniedOverflow, 0);
  using trail = AuditTrail.open(join(h.dir, "data/audit.db"), { readOnly: true });
  assert.equal(trail.query({ kind: "permission.denied", plugin: "audit-flood" }).length, 1);
  const gaps = trail.query({ kind: "permission.audit_incomplete", plugin: "audit-flood" });
  assert.equal(gaps.length, 1);
  assert.equal(JSON.parse(gaps[0]!.detail).overflow, report.incomplete.overflow);
  const text = memoryIo();
  await runCli(["--config", h.configPath, "plugins", "permissions", "audit-flood"], text);
  assert.match(text.stdout, /read {2}"\/etc\/hostname": 1 time\(s\)/);
  assert.match(text.stdout, /INCOMPLETE/);
  assert.match(text.stdout, /\d+ granted check\(s\) of pairs past the per-process bound/);
});

Deno.test("`plugins learn` prints a path holding a newline, YAML and an ANSI escape inert", async () => {
  await using h = await makeHome();
  await h.addPlugin(join(FIXTURE_PLUGINS, "audit_inject"), { as: "audit-inject" });
  await h.writeConfig({
    security: { allowed_roots: [join(h.dir, "plugins"), join(h.dir, "data"), "/etc"] },
  });
  const calls = join(h.dir, "calls.jsonl");
  await Deno.writeTextFile(calls, '{"method":"go"}\n');
  const io = await cliOk([
    "--config",
    h.configPath,
    "plugins",
    "learn",
    "audit-inject",
    "--calls",
    calls,
  ]);
  // Neither the refused path nor the call's error message reached a line of its own.
  assert.doesNotMatch(io.stdout, RAW_CONTROL);
  assert.doesNotMatch(io.stdout, /^\s*- \{ path: "\/home"/m);
  assert.doesNotMatch(io.stdout, /^\s*- \{ path: "\/root"/m);
  assert.match(io.stdout, /# REFUSED \(not proposed\): read "\/nowhere\\n {4}- \{ path: /);
  assert.match(io.stdout, /# call failed: /);
  const doc = parseYaml(io.stdout) as {
    capabilities: { filesystem: { path: string; permissions: string[] }[] };
  };
  assert.deepEqual(doc.capabilities.filesystem.map((g) => g.path), [
    "./data/a.txt",
    "./data/b.txt",
  ]);
  const p = await cliOk(["--config", h.configPath, "plugins", "permissions", "audit-inject"]);
  assert.doesNotMatch(p.stdout, RAW_CONTROL);
  assert.match(p.stdout, /read {2}"\/nowhere\\n {4}- \{ path: \\"\/home\\"/);
  assert.equal(p.stdout.split("\n").filter((l) => l.includes("/home")).length, 1);
});
