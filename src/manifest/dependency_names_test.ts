import assert from "node:assert/strict";
import type { PluginDescriptor } from "./load_manifest.ts";
import { planStartOrder } from "./discover_plugins.ts";
import { dependencyNames } from "./dependency_names.ts";

function plugin(
  name: string,
  dependsOn: string[] = [],
  calls: string[] = [],
): PluginDescriptor {
  return {
    name,
    manifest: {
      depends_on: dependsOn,
      capabilities: { plugins: calls.map((n) => ({ name: n, methods: ["m"] })) },
    },
  } as unknown as PluginDescriptor;
}

const names = (ps: readonly PluginDescriptor[]) => ps.map((p) => p.name);

Deno.test("planStartOrder() starts the plugins a plugin may call before it", () => {
  const { order, refused } = planStartOrder([plugin("a", [], ["b"]), plugin("b")]);
  assert.deepEqual(names(order), ["b", "a"]);
  assert.deepEqual(refused, []);
});

Deno.test("planStartOrder() keeps plugins that call each other, and a missing call target refuses nobody", () => {
  const { order, refused } = planStartOrder([
    plugin("a", [], ["b", "gone"]),
    plugin("b", [], ["a"]),
    plugin("c", ["a"], ["c"]),
  ]);
  assert.deepEqual(refused, []);
  assert.deepEqual(names(order), ["b", "a", "c"]);
});

Deno.test("planStartOrder() drops a call edge, never a depends_on edge, to break a cycle", () => {
  // b depends on a; a may call b: a must still come first.
  const { order, refused } = planStartOrder([plugin("a", [], ["b"]), plugin("b", ["a"])]);
  assert.deepEqual(refused, []);
  assert.deepEqual(names(order), ["a", "b"]);
});

Deno.test("dependencyNames() lists depends_on, then the call targets, each once", () => {
  assert.deepEqual(dependencyNames(plugin("a", ["x", "y"], ["y", "z", "z"]).manifest), [
    "x",
    "y",
    "z",
  ]);
});
