import assert from "node:assert/strict";
import { join } from "node:path";
import { loadManifest, ManifestError } from "./mod.ts";

/** Loads a manifest whose `capabilities.plugins` is `grants` (YAML flow text). */
async function withGrants(grants: string) {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "main.ts"), "");
    await Deno.writeTextFile(
      join(dir, "manifest.yaml"),
      `plugin: { name: caller, version: 1.0.0, entrypoint: ./main.ts }\n` +
        `capabilities:\n  plugins: ${grants}\n`,
    );
    return await loadManifest(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("capabilities.plugins refuses grants to itself, protocol methods, odd names and repeats", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["itself", "[{ name: caller, methods: [echo] }]", /calls to itself/],
    ["$/shutdown", '[{ name: b, methods: ["$/shutdown"] }]', /protocol's methods/],
    ["host/process.exec", '[{ name: b, methods: ["host/process.exec"] }]', /protocol's methods/],
    ["a trailing space", '[{ name: b, methods: ["ping "] }]', /printable ASCII/],
    ["a look-alike letter", '[{ name: b, methods: ["p\u0456ng"] }]', /printable ASCII/],
    ["a method twice", "[{ name: b, methods: [ping, ping] }]", /listed twice/],
    ["a plugin twice", "[{ name: b, methods: [ping] }, { name: b, methods: [pong] }]", /twice/],
  ];
  for (const [name, grants, message] of cases) {
    await t.step(name, async () => {
      await assert.rejects(withGrants(grants), (e: unknown) => {
        assert.ok(e instanceof ManifestError, String(e));
        assert.equal(e.code, "MANIFEST_INVALID");
        assert.match(JSON.stringify(e.issues), message);
        assert.match(JSON.stringify(e.issues), /capabilities\.plugins/);
        return true;
      });
    });
  }
  const ok = await withGrants("[{ name: b, methods: [ping, get.v2, do_it] }]");
  assert.deepEqual(ok.manifest.capabilities.plugins, [{
    name: "b",
    methods: ["ping", "get.v2", "do_it"],
  }]);
});

Deno.test("a manifest's methods follow the same naming rule as grants", async () => {
  for (const name of ["say hello", "grüßen", "$/configure", "host/x"]) {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(join(dir, "main.ts"), "");
      await Deno.writeTextFile(
        join(dir, "manifest.yaml"),
        `plugin: { name: p, version: 1.0.0, entrypoint: ./main.ts }\n` +
          `methods:\n  ${JSON.stringify(name)}: {}\n`,
      );
      await assert.rejects(loadManifest(dir), (e: unknown) => {
        assert.ok(e instanceof ManifestError, String(e));
        assert.match(JSON.stringify(e.issues), /printable ASCII|are the host's/, name);
        return true;
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});
