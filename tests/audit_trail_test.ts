/**
 * The hash-chained audit trail: `audit verify` on a fresh trail, after a row is edited or
 * deleted with the sqlite3 CLI, and what `call` leaves in the trail and the log store.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { AuditTrail } from "../src/audit/mod.ts";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { cliOk, makeHome, ROOT, SAMPLE_PLUGINS } from "./_helpers.ts";

async function sqlite3(db: string, sql: string): Promise<void> {
  const out = await new Deno.Command("sqlite3", { args: [db, sql], stderr: "piped" }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

async function freshTrail() {
  const home = await makeHome();
  const path = join(home.dir, "data/audit.db");
  {
    using trail = AuditTrail.open(path, { actor: "test" });
    for (let i = 1; i <= 4; i++) trail.append({ kind: "test.event", plugin: "p", detail: { i } });
  }
  return { home, path };
}

async function verify(configPath: string) {
  const io = memoryIo();
  const code = await runCli(["--config", configPath, "audit", "verify"], io);
  return { code, ...io };
}

Deno.test("`audit verify` passes on a fresh trail", async () => {
  const { home } = await freshTrail();
  await using _ = home;
  const v = await verify(home.configPath);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /ok, 4 row\(s\), chain intact/);
});

Deno.test("`audit verify` names the row edited with the sqlite3 CLI", async () => {
  const { home, path } = await freshTrail();
  await using _ = home;
  await sqlite3(path, `UPDATE audit SET detail = '{"i":99}' WHERE id = 3`);
  const v = await verify(home.configPath);
  assert.equal(v.code, 1);
  assert.match(v.stderr, /AUDIT_CHAIN_BROKEN.*row 3: row was edited/);
});

Deno.test("`audit verify` names a row deleted with the sqlite3 CLI, and again after the ids are renumbered", async () => {
  const { home, path } = await freshTrail();
  await using _ = home;
  await sqlite3(path, "DELETE FROM audit WHERE id = 2");
  const v = await verify(home.configPath);
  assert.equal(v.code, 1);
  assert.match(v.stderr, /row 2: row 2 is missing \(deleted\)/);
  // Renumbering the rows to hide the gap breaks the link instead.
  await sqlite3(path, "UPDATE audit SET id = id - 1 WHERE id > 2");
  const again = await verify(home.configPath);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /row 2: prev_hash does not link/);
});

Deno.test("after `call cat speak`, the trail shows cat's start and exit and the log store its records", async () => {
  await using home = await makeHome();
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  // The default level (the test homes log warnings only).
  await home.writeConfig({ logging: { level: "info" } });
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "main.ts"), "--config", home.configPath, "call", "cat", "speak"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), { sound: "meow" });

  const q = await cliOk([
    "--config",
    home.configPath,
    "audit",
    "query",
    "--plugin",
    "cat",
    "--json",
  ]);
  const rows = q.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((r) => [r.kind, r.actor]), [["plugin.start", "call"], [
    "plugin.exit",
    "call",
  ]]);
  assert.match(rows[0].detail.argvSha256, /^[0-9a-f]{64}$/);
  assert.match(rows[0].detail.codeSha256, /^[0-9a-f]{64}$/);
  assert.equal(typeof rows[0].detail.pid, "number");

  const logs = await cliOk([
    "--config",
    home.configPath,
    "logs",
    "query",
    "--plugin",
    "cat",
    "--json",
  ]);
  const messages = logs.stdout.trim().split("\n").map((l) => JSON.parse(l).message);
  assert.ok(messages.some((m: string) => /plugin cat .*ready/.test(m)), messages.join("\n"));
  assert.ok(messages.some((m: string) => /plugin cat is stopped/.test(m)), messages.join("\n"));

  const v = await verify(home.configPath);
  assert.equal(v.code, 0, v.stderr);
});

Deno.test("`audit verify`, `audit query` and `plugins permissions` name an empty or corrupt audit.db (AUDIT_OPEN, exit 1)", async () => {
  await using home = await makeHome();
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await home.writeConfig();
  const path = join(home.dir, "data/audit.db");
  await Deno.mkdir(join(home.dir, "data"), { recursive: true });
  const commands = [
    ["audit", "verify"],
    ["audit", "query", "--json"],
    ["plugins", "permissions", "cat"],
  ];
  for (const content of ["", "this is not an SQLite database\n".repeat(200)]) {
    await Deno.writeTextFile(path, content);
    for (const args of commands) {
      const io = memoryIo();
      const code = await runCli(["--config", home.configPath, ...args], io);
      const what = `${args.join(" ")} on ${content.length} bytes: ${io.stderr}`;
      assert.equal(code, 1, what);
      assert.match(
        io.stderr,
        /error \[AUDIT_OPEN\]: .*audit\.db is not a plugsconc audit trail/,
        what,
      );
      assert.ok(io.stderr.includes(path), what);
      assert.doesNotMatch(io.stderr, /internal error/, what);
    }
  }
});

Deno.test("`audit query --json` prints a detail that is not JSON as the stored text", async () => {
  const { home, path } = await freshTrail();
  await using _ = home;
  await sqlite3(path, "UPDATE audit SET detail = 'not json' WHERE id = 2");
  const q = await cliOk(["--config", home.configPath, "audit", "query", "--json"]);
  const rows = q.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(rows.map((r) => r.detail), [{ i: 1 }, "not json", { i: 3 }, { i: 4 }]);
  // The chain still names the edit.
  const v = await verify(home.configPath);
  assert.equal(v.code, 1);
  assert.match(v.stderr, /row 2: row was edited/);
});
