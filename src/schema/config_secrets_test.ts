import assert from "node:assert/strict";
import { MASK, maskConfig, maskLeaves, maskPaths, maskWriteOnly } from "./config_secrets.ts";
import { checkSchema, compileSchema } from "./json_schema.ts";

Deno.test("maskWriteOnly() masks writeOnly fields wherever the schema puts them", () => {
  const schema = {
    $defs: {
      cred: { type: "object", properties: { secret: { type: "string", writeOnly: true } } },
    },
    type: "object",
    properties: {
      user: { type: "string" },
      token: { type: "string", writeOnly: true },
      creds: { type: "array", items: { $ref: "#/$defs/cred" } },
      pair: { prefixItems: [{ type: "string" }, { writeOnly: true }] },
      either: { anyOf: [{ type: "integer" }, { type: "string", writeOnly: true }] },
    },
    additionalProperties: { type: "object", properties: { key: { writeOnly: true } } },
  };
  const value = {
    user: "ann",
    token: { nested: "t" },
    creds: [{ secret: "s1", id: 1 }, { id: 2 }],
    pair: ["a", "b"],
    either: 5,
    other: { key: "k", keep: true },
  };
  assert.deepEqual(maskWriteOnly(value, schema), {
    user: "ann",
    token: "***",
    creds: [{ secret: "***", id: 1 }, { id: 2 }],
    pair: ["a", "***"],
    either: "***",
    other: { key: "***", keep: true },
  });
  // The input is left alone.
  assert.equal(value.creds[0]!.secret, "s1");
});

Deno.test("maskPaths() masks the values at the given paths only", () => {
  assert.deepEqual(
    maskPaths({ a: { b: "x", c: ["y", "z"] } }, [["a", "b"], ["a", "c", 1], ["nope"]]),
    {
      a: { b: "***", c: ["y", "***"] },
    },
  );
  assert.equal(maskPaths("whole", [[]]), "***");
});

Deno.test("maskWriteOnly() masks below the depth the validator follows, never shows it", () => {
  // A recursive tree of secrets, 100 levels deep: two steps (property, $ref) per level.
  const schema = {
    $defs: {
      node: {
        type: "object",
        properties: { secret: { writeOnly: true }, child: { $ref: "#/$defs/node" } },
      },
    },
    $ref: "#/$defs/node",
  };
  let tree: Record<string, unknown> = { secret: "LEVEL100-SECRET" };
  for (let i = 99; i >= 1; i--) tree = { secret: `LEVEL${i}-SECRET`, child: tree };
  const shown = JSON.stringify(maskWriteOnly(tree, schema));
  assert.ok(!shown.includes("-SECRET"), shown);
  assert.equal(compileSchema(schema)(tree), undefined, "the validator accepts it");
  // A chain of $refs deeper than the validator follows is masked whole.
  const defs: Record<string, unknown> = { d200: { type: "object" } };
  for (let i = 0; i < 200; i++) defs[`d${i}`] = { $ref: `#/$defs/d${i + 1}` };
  const chain = { $defs: defs, $ref: "#/$defs/d0" };
  assert.equal(maskWriteOnly({ plain: "x" }, chain), MASK);
  assert.match(compileSchema(chain)({ plain: "x" })!, /nested deeper than 128 \$ref levels/);
  // Within the limit, nothing is masked that is not secret.
  assert.deepEqual(
    maskWriteOnly({ secret: "s", child: { secret: "t" }, n: 1 }, schema),
    { secret: MASK, child: { secret: MASK }, n: 1 },
  );
});

Deno.test("maskWriteOnly() resolves $ref names as the validator does, and never throws", () => {
  for (const name of ["tok%65n", "100%", "%E0%A4%A", "a%2Fb", "__proto__", "constructor"]) {
    const schema = {
      type: "object",
      $defs: { [name]: { type: "string", writeOnly: true } },
      properties: { token: { $ref: `#/$defs/${name}` } },
    };
    assert.equal(checkSchema(schema), undefined, name);
    assert.deepEqual(maskWriteOnly({ token: "PERCENT-SECRET" }, schema), { token: MASK }, name);
    assert.deepEqual(maskConfig({ token: "PERCENT-SECRET" }, { schema }), { token: MASK }, name);
  }
  // A $ref to nothing (or an inherited name) masks, as the validator refuses it.
  const broken = { properties: { a: { $ref: "#/$defs/toString" } } };
  assert.deepEqual(maskWriteOnly({ a: "x", b: "y" }, broken), { a: MASK, b: "y" });
  // A schema whose branches refer back to themselves cannot make the walk run away.
  const loop = { $defs: { a: { anyOf: [{ $ref: "#/$defs/a" }, { $ref: "#/$defs/a" }] } } };
  assert.equal(maskWriteOnly("x", { ...loop, $ref: "#/$defs/a" }), MASK);
});

Deno.test("maskConfig() shows values only of a config that passes its schema", () => {
  const schema = {
    type: "object",
    properties: {
      user: { type: "string" },
      keys: { type: "object", additionalProperties: { type: "string", writeOnly: true } },
      apiKey: { type: "string" },
    },
  };
  const fromEnv = [["plugins", "p", "config", "apiKey"], ["plugins", "q", "config", "user"]];
  const at = ["plugins", "p", "config"];
  assert.deepEqual(
    maskConfig({ user: "ann", keys: { a: "K1" }, apiKey: "ENV" }, { schema, fromEnv, at }),
    { user: "ann", keys: { a: MASK }, apiKey: MASK },
  );
  // The wrong shape: the schema cannot say where its secrets are.
  assert.deepEqual(
    maskConfig({ user: "ann", keys: ["WRONG-SHAPE-SECRET"], n: [1, { b: null }] }, { schema }),
    { user: MASK, keys: [MASK], n: [MASK, { b: MASK }] },
  );
  // No schema, or one outside the supported subset: nothing is shown either.
  assert.deepEqual(maskConfig({ token: "T", list: [true] }), { token: MASK, list: [MASK] });
  assert.deepEqual(maskConfig({ token: "T" }, { schema: { if: {} } }), { token: MASK });
  assert.equal(maskConfig(undefined, { schema }), undefined);
  assert.equal(maskConfig("scalar"), MASK);
  // A key named __proto__ stays a key.
  const odd = JSON.parse('{"__proto__": {"x": "P"}}');
  assert.equal(JSON.stringify(maskLeaves(odd)), '{"__proto__":{"x":"***"}}');
});
