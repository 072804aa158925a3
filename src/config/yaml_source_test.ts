import assert from "node:assert/strict";
import { ConfigError, findExcessiveNesting, formatPath, parseYamlSource } from "./mod.ts";

Deno.test("findExcessiveNesting() counts flow, block and sequence nesting", () => {
  assert.equal(findExcessiveNesting("a: [[[1]]]\n", 4), undefined);
  assert.deepEqual(findExcessiveNesting("a: [[[[1]]]]\n", 4), { line: 1, column: 7, depth: 5 });
  assert.equal(findExcessiveNesting("- - - x\n", 4), undefined); // the top level counts one
  assert.ok(findExcessiveNesting("- - - - x\n", 4) !== undefined);
  const block = "a:\n  b:\n    c:\n      d: 1\n";
  assert.equal(findExcessiveNesting(block, 4), undefined);
  assert.equal(findExcessiveNesting(block, 3)?.line, 4);
});

Deno.test("findExcessiveNesting() ignores brackets in quotes, comments and block scalars", () => {
  const text = "a: \"[[[[[[\"\nb: '{{{{{' # [[[[[[\nc: |\n  [[[[[[[[\n  {{{{{{{\nd: 1\n";
  assert.equal(findExcessiveNesting(text, 2), undefined);
});

Deno.test("formatPath() writes keys dotted and indexes in brackets", () => {
  assert.equal(formatPath(["plugins", "cat", "env", 0, "x"]), "plugins.cat.env[0].x");
  assert.equal(formatPath([]), "");
});

Deno.test("parseYamlSource() refuses an alias inside the node it names, and keeps shared aliases", () => {
  assert.throws(
    () => parseYamlSource("keys: &k { a: x, self: *k }\n", "c.yaml"),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(JSON.stringify(e.issues), /refers to a node that contains it/);
      return true;
    },
  );
  const ok = parseYamlSource("base: &b { a: 1 }\none: *b\ntwo: *b\n", "c.yaml");
  assert.deepEqual(ok.value, { base: { a: 1 }, one: { a: 1 }, two: { a: 1 } });
});
