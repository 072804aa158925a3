/**
 * The sample plugins that need more than a call round trip to show (cat and dog are covered by
 * the runtime tests, fetch by the sandbox tests), and the SDK's life cycle on its own.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FIXTURE_PLUGINS, makeHome, SAMPLE_PLUGINS } from "./_helpers.ts";

Deno.test("notes keeps its notes as files in its private data folder, and can touch nothing else", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  const code = await home.addPlugin(join(SAMPLE_PLUGINS, "notes"));
  await using host = await home.startHost();
  const note = await host.call("notes", "add", { text: "buy milk" }) as {
    id: string;
    text: string;
  };
  assert.equal(note.text, "buy milk");
  await host.call("notes", "add", { text: "call mum" });
  const list = await host.call("notes", "list") as { text: string }[];
  assert.deepEqual(list.map((n) => n.text), ["buy milk", "call mum"]);
  const data = join(home.dir, "data", "plugins", "notes");
  const saved = JSON.parse(await Deno.readTextFile(join(data, `${note.id}.json`)));
  assert.equal(saved.text, "buy milk");
  assert.deepEqual(await host.call("notes", "remove", { id: note.id }), { removed: note.id });
  assert.deepEqual((await host.call("notes", "list") as { text: string }[]).map((n) => n.text), [
    "call mum",
  ]);
  // Bad input is a clear error from the handler, not a crash.
  await assert.rejects(host.call("notes", "add", { text: "" }), /add needs \{ text: string \}/);
  await assert.rejects(
    host.call("notes", "remove", { id: "../../config" }),
    /remove needs \{ id \}/,
  );
  // Its grant is its data folder: its own code folder is not writable.
  const argv = host.sandbox("notes")!.argv;
  assert.ok(argv.some((a) => a === `--allow-write=${data}`), argv.join(" "));
  assert.ok(!argv.some((a) => a.startsWith("--allow-write") && a.includes(code)), argv.join(" "));
});

Deno.test("a plugin exits by itself when its stdin closes (the host went away)", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(join(FIXTURE_PLUGINS, "behave"));
  // Start it once through the host for its compiled argv/env, then run that by hand.
  const host = await home.startHost();
  const compiled = host.sandbox("behave")!;
  const dir = host.plugins()[0]!.dir;
  await host.stop();
  const child = new Deno.Command(Deno.execPath(), {
    args: [...compiled.argv],
    env: { ...compiled.env },
    clearEnv: true,
    cwd: dir,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  assert.match(first, /"method":"\$\/ready"/);
  await child.stdin.close();
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  const status = await child.status;
  clearTimeout(timer);
  reader.releaseLock();
  await child.stdout.cancel();
  assert.equal(status.signal, null, "it had to be killed");
  assert.equal(status.code, 0);
});
