import assert from "node:assert/strict";
import { PlugsconcError } from "../errors/mod.ts";
import { SandboxError, throwIfRefused } from "./mod.ts";

const refusals = [
  { at: "capabilities.filesystem[2]", grant: "/etc (read)", reason: "outside the roots; use X" },
  { at: "capabilities.env[0]", grant: "LD_PRELOAD", reason: "loader variable; remove it" },
];

Deno.test("SandboxError.grantRefused() lists each refusal with file, manifest path, grant and reason", () => {
  const e = SandboxError.grantRefused(
    { name: "cat", manifestFile: "/p/cat/manifest.yaml" },
    refusals,
  );
  assert.ok(e instanceof PlugsconcError);
  assert.equal(e.code, "GRANT_REFUSED");
  assert.equal(e.plugin, "cat");
  assert.deepEqual(e.refusals, refusals);
  assert.equal(
    e.message,
    "plugin cat: 2 capabilities refused; it will not start:\n" +
      "  /p/cat/manifest.yaml: capabilities.filesystem[2]: /etc (read): outside the roots; use X\n" +
      "  /p/cat/manifest.yaml: capabilities.env[0]: LD_PRELOAD: loader variable; remove it",
  );
  assert.deepEqual((e.toJSON().details as { refusals: unknown }).refusals, refusals);
});

Deno.test("SandboxError.moduleOutsidePlugin() names each module and its importers", () => {
  const e = SandboxError.moduleOutsidePlugin({ name: "cat", dir: "/p/cat" }, [{
    specifier: "file:///etc/passwd",
    path: "/etc/passwd",
    importedBy: ["file:///p/cat/main.ts"],
    reason: "a file outside the plugin folder and the SDK",
  }]);
  assert.equal(e.code, "MODULE_OUTSIDE_PLUGIN");
  assert.match(
    e.message,
    /^plugin cat: .*\n {2}file:\/\/\/etc\/passwd \(imported by file:\/\/\/p\/cat\/main\.ts\): a file outside/,
  );
  assert.match(e.message, /fix: keep every module inside the plugin folder/);
});

Deno.test("throwIfRefused() throws GRANT_REFUSED only when there are refusals", () => {
  const plugin = { name: "cat", manifestFile: "/p/cat/manifest.yaml" };
  throwIfRefused({ plugin, refusals: [] });
  assert.throws(
    () => throwIfRefused({ plugin, refusals }),
    (e) => e instanceof SandboxError && e.code === "GRANT_REFUSED" && e.refusals.length === 2,
  );
});
