/**
 * `plugins checksum` and `plugins verify`, run in-process on a temp home with real plugin
 * folders (the module-graph check runs a real `deno info`; the checksum covers the folder).
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { Command, CommanderError } from "commander";
import { registerChecksumCommands } from "../cli/plugins_checksum.ts";
import { exitCodeFor, formatError } from "../cli/exit_codes.ts";
import { memoryIo } from "../cli/io.ts";

async function makeHome() {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-cksum-cli-" }));
  const write = async (rel: string, text: string) => {
    await Deno.mkdir(dirname(join(dir, rel)), { recursive: true });
    await Deno.writeTextFile(join(dir, rel), text);
  };
  await write(
    "config.yaml",
    "dirs: { plugins: ./plugins, data: ./data }\nlogging: { level: warning }\n" +
      "worker_pool: { max_workers: 2 }\n",
  );
  for (const name of ["cat", "dog"]) {
    await write(
      `plugins/${name}/manifest.yaml`,
      `plugin: { name: ${name}, version: 1.0.0, entrypoint: ./main.ts }\n`,
    );
    await write(
      `plugins/${name}/main.ts`,
      `import { sound } from "./lib/sound.ts";\nconsole.log(sound);\n`,
    );
    await write(`plugins/${name}/lib/sound.ts`, `export const sound = "${name}";\n`);
  }
  return {
    dir,
    write,
    config: join(dir, "config.yaml"),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** A program with only the commands under test, run like `runCli` does. */
async function cli(args: string[]) {
  const io = memoryIo();
  const program = new Command().exitOverride().option("-c, --config <path>", "", "config.yaml")
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  const plugins = program.command("plugins").exitOverride();
  registerChecksumCommands(plugins, {
    io,
    globals: () => ({
      config: program.opts<{ config: string }>().config,
      configExplicit: true,
      verbose: false,
    }),
  });
  for (const c of plugins.commands) c.exitOverride();
  let code = 0;
  try {
    await program.parseAsync(args, { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) code = 2;
    else {
      io.err(formatError(e, false));
      code = exitCodeFor(e);
    }
  }
  return { code, stdout: io.stdout, stderr: io.stderr };
}

Deno.test("`plugins checksum cat` writes and prints main.ts.sha256; `verify` then says ok", async () => {
  await using home = await makeHome();
  const r = await cli(["-c", home.config, "plugins", "checksum", "cat"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^[0-9a-f]{64} {2}main\.ts\n$/);
  const file = join(home.dir, "plugins/cat/main.ts.sha256");
  assert.equal(await Deno.readTextFile(file), r.stdout);
  assert.match(r.stderr, /wrote .*main\.ts\.sha256/);

  const v = await cli(["-c", home.config, "plugins", "verify"]);
  assert.equal(v.code, 0, v.stderr);
  const lines = v.stdout.trim().split("\n");
  assert.match(lines[0]!, /^NAME\s+STATUS\s+EXPECTED\s+ACTUAL$/);
  const hex = r.stdout.slice(0, 16);
  assert.match(lines[1]!, new RegExp(`^cat\\s+ok\\s+${hex}…\\s+${hex}…$`));
  assert.match(lines[2]!, /^dog\s+unsigned\s+-\s+[0-9a-f]{16}…$/);
});

Deno.test("`plugins verify` exits 1 and names the plugin whose code changed", async () => {
  await using home = await makeHome();
  assert.equal((await cli(["-c", home.config, "plugins", "checksum", "cat"])).code, 0);
  await home.write("plugins/cat/lib/sound.ts", 'export const sound = "woof";\n');
  const v = await cli(["-c", home.config, "plugins", "verify", "--json"]);
  assert.equal(v.code, 1);
  const json = JSON.parse(v.stdout);
  assert.deepEqual(json.plugins.map((p: { name: string; status: string }) => [p.name, p.status]), [
    ["cat", "mismatch"],
    ["dog", "unsigned"],
  ]);
  assert.match(v.stderr, /error \[CHECKSUM_MISMATCH\]: plugin cat: its code does not match/);
});

Deno.test("`plugins checksum --json` lists every file of the folder; `verify` sees an edit of one outside the module graph", async () => {
  await using home = await makeHome();
  await home.write("plugins/cat/lib/extra", "export const unused = 1;\n");
  const r = await cli(["-c", home.config, "plugins", "checksum", "cat", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout);
  assert.deepEqual(json.files.map((f: { path: string; kind: string }) => [f.path, f.kind]), [
    ["lib/extra", "file"],
    ["lib/sound.ts", "file"],
    ["main.ts", "file"],
    ["manifest.yaml", "file"],
  ]);
  assert.equal(json.file, join(home.dir, "plugins/cat/main.ts.sha256"));
  assert.equal((await cli(["-c", home.config, "plugins", "verify", "cat"])).code, 0);
  await home.write("plugins/cat/lib/extra", "export const unused = 2;\n");
  const v = await cli(["-c", home.config, "plugins", "verify", "cat"]);
  assert.equal(v.code, 1);
  assert.match(v.stdout, /^cat\s+mismatch\s/m);
  assert.match(v.stderr, /the plugin folder hashes to [0-9a-f]{64}/);
});

Deno.test("`plugins verify` reports a plugin whose module graph is refused as an error", async () => {
  await using home = await makeHome();
  await home.write("secret.txt", "hunter2");
  await home.write(
    "plugins/dog/main.ts",
    'import s from "../../secret.txt" with { type: "text" };\nconsole.log(s);\n',
  );
  const v = await cli(["-c", home.config, "plugins", "verify"]);
  assert.equal(v.code, 1);
  assert.match(v.stdout, /^dog\s+error\s+-\s+-$/m);
  assert.match(v.stdout, /^cat\s+unsigned/m);
  assert.match(v.stderr, /^plugin dog: .*secret\.txt/ms);
  assert.match(v.stderr, /\[CHECKSUM_UNVERIFIED\]: 1 plugin\(s\) failed verification: dog/);
  const c = await cli(["-c", home.config, "plugins", "checksum", "nope"]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /PLUGIN_NOT_FOUND/);
});
