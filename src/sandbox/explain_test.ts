import assert from "node:assert/strict";
import { compileSandbox, explainSandbox } from "./mod.ts";
import { makeHost } from "./_testing.ts";

Deno.test("explainSandbox() prints the exact argv one argument per line and env names without values", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({
    capabilities: {
      filesystem: [{ path: "${DATA_DIR}", permissions: ["read", "write"] }],
      network: { egress: [{ hosts: ["api.example.com"], ports: [443] }] },
      process: [{ kill: ["children"] }],
      env: ["API_KEY", "TZ"],
    },
  });
  const ctx = host.ctx(plugin, { plugins: { cat: { env: { API_KEY: "very-secret-value" } } } });
  const c = compileSandbox(plugin, ctx);
  const text = explainSandbox(c);
  const lines = text.split("\n");
  assert.ok(lines.includes("  deno run"));
  for (const arg of c.argv.slice(1)) assert.ok(lines.includes(`    ${arg}`), arg);
  for (const name of ["API_KEY", "DENO_DIR", "NO_COLOR", "PLUGSCONC_PLUGIN"]) {
    assert.ok(lines.includes(`  ${name}`), name);
  }
  assert.ok(!text.includes("very-secret-value"));
  assert.ok(!text.includes("b3f1c9e2-plugsconc-plugin-v1"), "the cookie value is not shown");
  assert.match(text, /process \(served by the host, never a Deno flag\):\n {4}kill children/);
  assert.match(text, /warnings \(1\):\n {2}- declared env TZ has no value/);
  assert.match(text, /refusals: none/);
  assert.match(text, /verdict: may start/);
});

Deno.test("explainSandbox() lists refusals and the refused verdict", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({
    capabilities: { filesystem: [{ path: "/etc", permissions: ["read"] }] },
  });
  const text = explainSandbox(compileSandbox(plugin, host.ctx(plugin)));
  assert.match(text, /refusals \(1\):\n {2}- capabilities\.filesystem\[0\]: \/etc \(read\): /);
  assert.match(text, /verdict: refused \(1 capability refused; GRANT_REFUSED\)/);
  assert.match(text, /read: none/);
});

Deno.test("explainSandbox() shell-quotes arguments with spaces", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({ plugin: { name: "spaced" } });
  const ctx = { ...host.ctx(plugin), importMapPath: "/opt/my host/import map.json" };
  const text = explainSandbox(compileSandbox(plugin, ctx));
  assert.ok(text.includes("    '--import-map=/opt/my host/import map.json'"));
});
