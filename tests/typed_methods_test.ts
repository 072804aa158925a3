/**
 * Typed methods (issue 16, part 1) with a real plugin process: params checked by the host
 * before the plugin sees a call, results checked by the SDK, bad schemas refused at load,
 * `plugins types` output that type-checks, and `host.client<T>()`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { InvalidParamsError, type PluginHost } from "../src/host/mod.ts";
import { ManifestError } from "../src/manifest/mod.ts";
import { PluginCallError, PluginUnavailableError } from "../src/runtime/mod.ts";
import { errorStatus } from "../src/server/error_status.ts";
import { captureLogs, FIXTURE_PLUGINS, makeHome, ROOT, waitFor } from "./_helpers.ts";

const TYPED = join(FIXTURE_PLUGINS, "typed");

async function typedHome() {
  const home = await makeHome();
  await home.addPlugin(TYPED);
  return home;
}

const seen = async (host: PluginHost) => await host.call("typed", "seen") as number;

Deno.test("a call with a wrong param type is refused by the host before the plugin sees it", async () => {
  await using home = await typedHome();
  await using host = await home.startHost();
  assert.equal(await host.call("typed", "add", { a: 2, b: 3 }), 5);
  assert.equal(await seen(host), 1);
  const refused = [
    [{ a: 2, b: "3" }, 'params.b: expected integer, got "3"'],
    [{ a: 2 }, "params.b: required property is missing"],
    [{ a: 1, b: 2, c: 3 }, "params.c: property not allowed (additionalProperties is false)"],
    [undefined, "params: expected object, got null"],
  ] as const;
  for (const [params, problem] of refused) {
    await assert.rejects(host.call("typed", "add", params), (e: unknown) => {
      assert.ok(e instanceof InvalidParamsError, String(e));
      assert.equal(e.code, "INVALID_PARAMS");
      assert.equal(e.problem, problem);
      assert.match(e.message, /^typed\.add: invalid params: /);
      assert.equal(e.rpcCode, -32602);
      assert.equal(errorStatus(e, "r").status, 400);
      return true;
    });
  }
  // A recursive schema ($defs/$ref), and params made optional by type [object, null].
  assert.equal(await host.call("typed", "tree", { value: 1, children: [{ value: 2 }] }), 3);
  await assert.rejects(
    host.call("typed", "tree", { value: 1, children: [{ value: "2" }] }),
    /params\.children\[0\]\.value: expected number, got "2"/,
  );
  assert.deepEqual(await host.call("typed", "greet"), { text: "hello you" });
  await assert.rejects(
    host.call("typed", "greet", { tags: ["shout"] }),
    /params\.tags\[0\]: expected one of "loud", "quiet"/,
  );
  // Only the three valid calls reached the plugin.
  assert.equal(await seen(host), 3);
  // Methods without a schema (and one the manifest does not list) take anything.
  assert.deepEqual(await host.call("typed", "echo", { any: ["thing", 1] }), { any: ["thing", 1] });
});

Deno.test("a result failing its schema becomes an INVALID_RESULT error, logged by the plugin", async () => {
  await using logs = await captureLogs();
  await using home = await typedHome();
  await using host = await home.startHost();
  await assert.rejects(host.call("typed", "wrong"), (e: unknown) => {
    assert.ok(e instanceof PluginCallError, String(e));
    assert.equal(e.remoteCode, -32603);
    assert.deepEqual(e.data, {
      name: "InvalidResult",
      code: "INVALID_RESULT",
      method: "wrong",
      problem: 'result: expected integer, got "not an integer"',
    });
    assert.match(e.message, /typed\.wrong failed: InvalidResult: result: expected integer/);
    return true;
  });
  const logged = () =>
    logs.records.find((r) =>
      r.category.join(".") === "plugsconc.plugin.typed" &&
      String(r.properties.message ?? r.message.join("")).includes(
        'result refused: result: expected integer, got "not an integer"',
      )
    );
  assert.ok(await waitFor(() => logged() !== undefined, 5000), "the plugin logged the refusal");
  assert.equal(logged()!.level, "error");
  // The plugin ran it (the SDK refused what it returned) and keeps serving.
  assert.equal(await seen(host), 1);
  assert.deepEqual(await host.call("typed", "greet", { name: "ann", tags: ["loud"] }), {
    text: "HELLO ANN",
  });
});

Deno.test("a manifest with a schema outside the subset is refused at load, naming the field", async () => {
  await using home = await makeHome();
  await home.addPlugin(TYPED, {
    manifest: (t) =>
      t.replace("a: { type: integer, description: The first. }", "a: { type: integer, if: {} }"),
  });
  const { discoverPlugins } = await import("../src/manifest/mod.ts");
  const found = await discoverPlugins(home.pluginsDir);
  assert.equal(found.plugins.length, 0);
  const error = found.invalid[0]?.error;
  assert.ok(error instanceof ManifestError, String(error));
  assert.equal(error.code, "MANIFEST_INVALID");
  assert.match(
    error.message,
    /manifest\.yaml:\d+:\d+: methods\.add\.params\.properties\.a\.if: unsupported keyword "if"/,
  );
  // And a host does not start it.
  await using host = await home.startHost();
  assert.equal(host.plugins().length, 0);
  await assert.rejects(host.call("typed", "add", { a: 1, b: 2 }), /no plugin named typed/);
});

Deno.test("`plugins types` prints types that type-check and fit host.client<T>()", async () => {
  await using home = await typedHome();
  const io = memoryIo();
  const code = await runCli(["--config", home.configPath, "plugins", "types", "typed"], io);
  assert.equal(code, 0, io.stderr);
  assert.match(io.stdout, /export interface TypedPlugin \{/);
  assert.match(
    io.stdout,
    /add\(params: TypedAddParams, options\?: CallOptions\): Promise<TypedAddResult>;/,
  );
  assert.match(io.stdout, /greet\(params\?: TypedGreetParams/);
  assert.match(
    io.stdout,
    /seen\(params\?: TypedSeenParams, options\?: CallOptions\): Promise<TypedSeenResult>/,
  );
  assert.match(io.stdout, /export type TypedSeenResult = unknown;/);
  const types = join(home.dir, "typed_types.ts");
  await Deno.writeTextFile(types, io.stdout);
  // A client module using them: right calls compile, wrong ones must not.
  const client = join(home.dir, "client.ts");
  await Deno.writeTextFile(
    client,
    `import { PluginHost } from ${JSON.stringify(join(ROOT, "mod.ts"))};
import type { TypedPlugin, TypedTreeParams } from "./typed_types.ts";
export async function use(host: PluginHost): Promise<number> {
  const typed = host.client<TypedPlugin>("typed");
  const n: number = await typed.add({ a: 1, b: 2 });
  const g: string = (await typed.greet()).text;
  const t: TypedTreeParams = { value: 1, children: [{ value: 2, children: [] }] };
  // @ts-expect-error b must be a number
  await typed.add({ a: 1, b: "2" });
  // @ts-expect-error additionalProperties: false
  await typed.add({ a: 1, b: 2, c: 3 });
  // @ts-expect-error tags are "loud" | "quiet"
  await typed.greet({ tags: ["shout"] });
  // @ts-expect-error no such method
  await typed.nope({});
  return n + g.length + (await typed.tree(t));
}
`,
  );
  const check = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--config", join(ROOT, "deno.json"), client],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
});

Deno.test("host.client<T>() calls the plugin, with its params checked", async () => {
  interface Typed {
    add(params: { a: number; b: number }, options?: { timeoutMs?: number }): Promise<number>;
    seen(): Promise<number>;
  }
  await using home = await typedHome();
  await using host = await home.startHost();
  const typed = host.client<Typed>("typed");
  assert.equal(await typed.add({ a: 40, b: 2 }, { timeoutMs: 5000 }), 42);
  await assert.rejects(typed.add({ a: 1, b: 0.5 }), InvalidParamsError);
  assert.equal(await typed.seen(), 1);
  // `await`ing the client itself does not call a method named then.
  assert.equal(await Promise.resolve(typed), typed);
  const missing = host.client<Typed>("missing");
  await assert.rejects(missing.seen(), /no plugin named missing/);
  await host.stop();
  await assert.rejects(typed.seen(), PluginUnavailableError);
});

Deno.test("`call` with params failing the schema exits 2 and names the field", async () => {
  await using home = await typedHome();
  const io = memoryIo();
  const code = await runCli(
    ["--config", home.configPath, "call", "typed", "add", '{"a":1,"b":"2"}'],
    io,
  );
  assert.equal(code, 2, io.stderr);
  assert.match(
    io.stderr,
    /INVALID_PARAMS.*typed\.add: invalid params: params\.b: expected integer, got "2"/,
  );
  assert.equal(io.stdout, "");
});
