import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { VERSION } from "../src/version.ts";

const root = resolve(import.meta.dirname!, "..");
const fixture = (name: string) => join(root, "tests/fixtures/config", name);

Deno.test("`config check` on a bad file exits 2 and prints file:line:col, path and reason", async () => {
  const io = memoryIo();
  const code = await runCli(["config", "check", fixture("unknown_key.yaml")], io);
  assert.equal(code, 2);
  assert.match(io.stderr, /unknown_key\.yaml:4:3: logging\.levle: unknown key/);
  assert.equal(io.stdout, "");
});

Deno.test("`config check --json` prints valid JSON for good and bad files", async () => {
  const good = memoryIo();
  assert.equal(await runCli(["config", "check", "--json", join(root, "config.yaml")], good), 0);
  const parsed = JSON.parse(good.stdout);
  assert.equal(parsed.ok, true);
  assert.equal(parsed.config.dirs.plugins, join(root, "plugins"));
  assert.equal(parsed.config.defaults.retry.max_attempts, 3);

  const bad = memoryIo();
  assert.equal(await runCli(["config", "check", "--json", fixture("wrong_type.yaml")], bad), 2);
  const error = JSON.parse(bad.stdout).error;
  assert.equal(error.code, "CONFIG_INVALID");
  assert.equal(error.details.issues[0].path, "defaults.timeout_ms");
  assert.equal(error.details.issues[0].line, 2);
});

Deno.test("`config check --json` masks values that came from ${VAR}", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "c.yaml");
    await Deno.writeTextFile(file, 'server:\n  token: "${PLUGSCONC_TEST_TOKEN_X}"\n');
    Deno.env.set("PLUGSCONC_TEST_TOKEN_X", "tok-0123456789abcdef");
    const io = memoryIo();
    assert.equal(await runCli(["config", "check", "--json", file], io), 0);
    assert.equal(JSON.parse(io.stdout).config.server.token, "***");
    assert.ok(!io.stdout.includes("tok-0123456789abcdef"));
  } finally {
    Deno.env.delete("PLUGSCONC_TEST_TOKEN_X");
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unknown command or option exits 2; --version and --help exit 0", async () => {
  const unknown = memoryIo();
  assert.equal(await runCli(["frobnicate"], unknown), 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  const opt = memoryIo();
  assert.equal(await runCli(["config", "check", "--nope"], opt), 2);
  const version = memoryIo();
  assert.equal(await runCli(["--version"], version), 0);
  assert.equal(version.stdout.trim(), VERSION);
  const help = memoryIo();
  assert.equal(await runCli(["--help"], help), 0);
  assert.match(help.stdout, /Usage: plugsconc/);
});

Deno.test("--verbose prints the cause chain of an error", async () => {
  const plain = memoryIo();
  await runCli(["config", "check", fixture("does-not-exist.yaml")], plain);
  assert.doesNotMatch(plain.stderr, /caused by/);
  const verbose = memoryIo();
  assert.equal(
    await runCli(["--verbose", "config", "check", fixture("does-not-exist.yaml")], verbose),
    2,
  );
  assert.match(verbose.stderr, /error \[CONFIG_NOT_FOUND\]/);
  assert.match(verbose.stderr, /caused by: .*No such file/);
});

Deno.test("`deno task cli config check` in a real process exits 2 with the located error", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "cli", "config", "check", "tests/fixtures/config/unknown_key.yaml"],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 2, stderr);
  assert.match(stderr, /unknown_key\.yaml:4:3: logging\.levle: unknown key/);
});

Deno.test("`run` starts, logs its settings and exits 0 when stopped", async () => {
  const stop = new AbortController();
  const io = memoryIo(stop.signal);
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "c.yaml");
    await Deno.writeTextFile(file, "logging: { format: json }\ndirs: { plugins: ./p }\n");
    const running = runCli(["--config", file, "run"], io);
    setTimeout(() => stop.abort(), 300);
    assert.equal(await running, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
