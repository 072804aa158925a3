import assert from "node:assert/strict";
import {
  checkSchema,
  compileSchema,
  LINEAR_REGEXP,
  LINEAR_REGEXP_FLAG,
  schemaProblem,
} from "./json_schema.ts";

const assertEquals = (a: unknown, b: unknown) => assert.deepEqual(a, b);
const assertMatch = (a: string, re: RegExp) => assert.match(a, re);
const assertStringIncludes = (a: string, part: string) =>
  assert.ok(a.includes(part), `${JSON.stringify(a)} does not include ${JSON.stringify(part)}`);
const user = {
  type: "object",
  required: ["name"],
  additionalProperties: false,
  properties: {
    name: { type: "string", minLength: 1, maxLength: 5 },
    age: { type: "integer", minimum: 0, exclusiveMaximum: 200 },
    tags: { type: "array", items: { type: "string", pattern: "^[a-z]+$" }, maxItems: 2 },
    kind: { enum: ["a", "b"] },
  },
};

Deno.test("compileSchema() accepts valid values and names the failing path of others", () => {
  const check = compileSchema({ type: "object", properties: { user } }, { root: "params" });
  assertEquals(check({ user: { name: "ann", age: 3, tags: ["x"], kind: "a" } }), undefined);
  assertEquals(
    check({ user: { name: "ann", age: "3" } }),
    'params.user.age: expected integer, got "3"',
  );
  assertEquals(check({ user: { age: 1 } }), "params.user.name: required property is missing");
  assertEquals(
    check({ user: { name: "" } }),
    "params.user.name: expected a string of at least 1 characters, got 0",
  );
  assertEquals(
    check({ user: { name: "abcdef" } }),
    "params.user.name: expected a string of at most 5 characters, got 6",
  );
  assertEquals(
    check({ user: { name: "a", x: 1 } }),
    "params.user.x: property not allowed (additionalProperties is false)",
  );
  assertEquals(
    check({ user: { name: "a", age: 200 } }),
    "params.user.age: expected a number < 200, got 200",
  );
  assertEquals(
    check({ user: { name: "a", age: -1 } }),
    "params.user.age: expected a number >= 0, got -1",
  );
  assertEquals(
    check({ user: { name: "a", tags: ["ok", "B"] } }),
    'params.user.tags[1]: expected a string matching /^[a-z]+$/, got "B"',
  );
  assertEquals(
    check({ user: { name: "a", tags: ["a", "b", "c"] } }),
    "params.user.tags: expected at most 2 items, got 3",
  );
  assertEquals(
    check({ user: { name: "a", kind: "c" } }),
    'params.user.kind: expected one of "a", "b", got "c"',
  );
  assertEquals(check("x"), 'params: expected object, got "x"');
});

Deno.test("compileSchema() counts string length in code points", () => {
  const check = compileSchema({ type: "string", minLength: 2, maxLength: 2 });
  assertEquals(check("😀😀"), undefined);
  assertMatch(check("😀")!, /at least 2 characters, got 1/);
  assertMatch(check("😀😀😀")!, /at most 2 characters, got 3/);
});

Deno.test("compileSchema() shows long values short and, with redact, not at all", () => {
  const long = "s".repeat(500);
  const shown = compileSchema({ type: "integer" })(long)!;
  assertEquals(shown.length < 80, true);
  const redacted = compileSchema({ type: "object", properties: { token: { type: "integer" } } }, {
    root: "config",
    redact: true,
  });
  assertEquals(redacted({ token: "hunter2" }), "config.token: expected integer, got string");
  const patterned = compileSchema({ pattern: "^x" }, { redact: true });
  assertEquals(patterned("secret")!.includes("secret"), false);
});

Deno.test("compileSchema() handles type arrays, const, integers and multipleOf", () => {
  const check = compileSchema({ type: ["string", "null"] });
  assertEquals(check(null), undefined);
  assertEquals(check(1), "value: expected string or null, got 1");
  assertEquals(compileSchema({ const: { a: [1] } })({ a: [1] }), undefined);
  assertMatch(compileSchema({ const: 3 })(4)!, /expected 3, got 4/);
  assertEquals(compileSchema({ type: "integer" })(2.0), undefined);
  assertMatch(compileSchema({ type: "integer" })(2.5)!, /expected integer/);
  assertEquals(compileSchema({ multipleOf: 0.1 })(0.3), undefined);
  assertMatch(compileSchema({ multipleOf: 0.5 })(0.3)!, /multiple of 0.5/);
  assertEquals(compileSchema(true)({}), undefined);
  assertMatch(compileSchema(false)(1)!, /no value is allowed/);
});

Deno.test("compileSchema() applies prefixItems, anyOf, oneOf, allOf and not", () => {
  const tuple = compileSchema({
    prefixItems: [{ type: "string" }, { type: "number" }],
    items: false,
  });
  assertEquals(tuple(["a", 1]), undefined);
  assertMatch(tuple(["a", "b"])!, /^value\[1\]: expected number/);
  assertMatch(tuple(["a", 1, 2])!, /^value\[2\]: no value is allowed/);
  const any = compileSchema({ anyOf: [{ type: "string" }, { type: "integer" }] });
  assertEquals(any(1), undefined);
  assertMatch(any(true)!, /none of the 2 anyOf alternatives/);
  const one = compileSchema({ oneOf: [{ type: "integer" }, { type: "number" }] });
  assertEquals(one(1.5), undefined);
  assertMatch(one(1)!, /matches 2 of the oneOf alternatives/);
  const all = compileSchema({ allOf: [{ minimum: 1 }, { maximum: 2 }] });
  assertMatch(all(3)!, /<= 2/);
  assertMatch(compileSchema({ not: { type: "null" } })(null)!, /must not match/);
});

Deno.test("compileSchema() follows local $refs, recursive ones included, to a bounded depth", () => {
  const tree = {
    $defs: {
      node: {
        type: "object",
        properties: {
          v: { type: "integer" },
          kids: { type: "array", items: { $ref: "#/$defs/node" } },
        },
      },
    },
    $ref: "#/$defs/node",
  };
  const check = compileSchema(tree, { root: "params" });
  assertEquals(check({ v: 1, kids: [{ v: 2, kids: [] }] }), undefined);
  assertEquals(check({ v: 1, kids: [{ v: "x" }] }), 'params.kids[0].v: expected integer, got "x"');
  let deep: Record<string, unknown> = { v: 1 };
  for (let i = 0; i < 300; i++) deep = { kids: [deep] };
  assertMatch(check(deep)!, /nested deeper than 128 \$ref levels/);
  // The next call starts from depth 0 again.
  assertEquals(check({ v: 1 }), undefined);
});

Deno.test("checkSchema() refuses keywords outside the subset, naming where", () => {
  assertEquals(checkSchema({ type: "object", if: {} }), 'if: unsupported keyword "if"');
  assertEquals(
    checkSchema({ properties: { a: { type: "string", contentEncoding: "base64" } } }),
    'properties.a.contentEncoding: unsupported keyword "contentEncoding"',
  );
  assertEquals(schemaProblem({ anyOf: [{ uniqueItems: true }] }), {
    path: "anyOf[0].uniqueItems",
    at: ["anyOf", 0, "uniqueItems"],
    message: 'unsupported keyword "uniqueItems"',
  });
  assertStringIncludes(checkSchema({ type: "int" })!, "unknown type");
  assertStringIncludes(checkSchema({ pattern: "(" })!, "pattern is not a valid regular expression");
  assertStringIncludes(checkSchema({ $ref: "http://x/y" })!, "only local references");
  assertStringIncludes(checkSchema({ $ref: "#/$defs/missing" })!, "no such definition");
  assertStringIncludes(
    checkSchema({ properties: { a: { $defs: {} } } })!,
    "only supported at the root",
  );
  assertStringIncludes(
    checkSchema({ $schema: "http://json-schema.org/draft-07/schema#" })!,
    "2020-12",
  );
  assertStringIncludes(checkSchema({ minLength: -1 })!, "non-negative integer");
  assertStringIncludes(checkSchema({ multipleOf: 0 })!, "greater than 0");
  assertStringIncludes(checkSchema("string")!, "a schema is an object or a boolean");
  assertEquals(
    checkSchema({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      title: "t",
      description: "d",
      default: 1,
      examples: [1],
      $comment: "c",
      format: "email",
      writeOnly: true,
      readOnly: false,
      deprecated: false,
      type: "string",
    }),
    undefined,
  );
});

Deno.test("checkSchema() enforces the depth and size limits", () => {
  let deep: unknown = { type: "string" };
  for (let i = 0; i < 40; i++) deep = { items: deep };
  assertStringIncludes(checkSchema(deep)!, "deeper than 32 levels");
  const wide = {
    properties: Object.fromEntries(Array.from({ length: 10_001 }, (_, i) => [`p${i}`, {}])),
  };
  assertStringIncludes(checkSchema(wide)!, "more than 10000 subschemas");
  assertStringIncludes(
    checkSchema({ enum: Array.from({ length: 1001 }, (_, i) => i) })!,
    "more than 1000",
  );
  assertStringIncludes(checkSchema({ pattern: "a".repeat(1001) })!, "longer than 1000");
  assert.throws(() => compileSchema({ if: {} }), /unsupported keyword "if"/);
});

Deno.test("compileSchema() with redact tells no length, size, value or match count of a value", () => {
  const secret = "s3cr3t-value-12";
  const cases: [unknown, unknown, string][] = [
    [{ minLength: 40 }, secret, "value: expected a string of at least 40 characters"],
    [{ maxLength: 3 }, secret, "value: expected a string of at most 3 characters"],
    [{ minItems: 3 }, [secret], "value: expected at least 3 items"],
    [{ maxItems: 0 }, [secret], "value: expected at most 0 items"],
    [{ minProperties: 2 }, { a: secret }, "value: expected at least 2 properties"],
    [{ maxProperties: 0 }, { a: secret }, "value: expected at most 0 properties"],
    [{ enum: ["a", "b"] }, secret, 'value: expected one of "a", "b", got string'],
    [{ const: "a" }, secret, 'value: expected "a", got string'],
    [{ pattern: "^x" }, secret, "value: expected a string matching /^x/, got string"],
    [{ minimum: 100 }, 42, "value: expected a number >= 100, got integer"],
    [{ multipleOf: 5 }, 42, "value: expected a multiple of 5, got integer"],
    [
      { oneOf: [{ type: "string" }, { minLength: 1 }, { pattern: "s" }] },
      secret,
      "value: matches more than one of the oneOf alternatives, expected exactly one",
    ],
    [
      { anyOf: [{ minLength: 40 }, { type: "integer" }] },
      secret,
      "value: matches none of the 2 anyOf alternatives (the first says: expected a string of " +
      "at least 40 characters)",
    ],
  ];
  for (const [schema, value, message] of cases) {
    assertEquals(compileSchema(schema, { redact: true })(value), message);
    // Without redact the counts stay: they help with values that are not secret.
    const plain = compileSchema(schema)(value)!;
    if (/characters|items|properties|oneOf/.test(message)) assertMatch(plain, /got \d|matches \d/);
  }
});

/** An expression tree: each node is `add` or `mul` of sub-expressions, or a number. */
const EXPR = {
  $defs: {
    expr: {
      anyOf: ["add", "mul"].map((op) => ({
        type: "object",
        required: ["op", "args"],
        properties: { op: { const: op }, args: { type: "array", items: { $ref: "#/$defs/expr" } } },
      })).concat([{ type: "number" } as never]),
    },
  },
  $ref: "#/$defs/expr",
};

Deno.test("compileSchema() checks a recursive anyOf in time linear in the value, not 2^depth", () => {
  const check = compileSchema(EXPR, { root: "params" });
  // "args" before "op": each branch would check the whole subtree before its op fails.
  let deep: unknown = 1;
  for (let i = 0; i < 60; i++) deep = { args: [deep, 2], op: "mul" };
  assert.equal(check(JSON.parse(JSON.stringify(deep))), undefined);
  let bad: unknown = "x";
  for (let i = 0; i < 60; i++) bad = { args: [bad], op: "mul" };
  assert.match(check(bad)!, /^params: matches none of the 3 anyOf alternatives/);
});

Deno.test("checkSchema() refuses schemas whose checks of one value multiply, or loop", () => {
  // A chain of $defs each trying the next twice: 2^40 checks of any one value.
  const defs: Record<string, unknown> = { d40: { type: "string" } };
  for (let i = 39; i >= 0; i--) {
    defs[`d${i}`] = { anyOf: [{ $ref: `#/$defs/d${i + 1}` }, { $ref: `#/$defs/d${i + 1}` }] };
  }
  assert.match(checkSchema({ $defs: defs, $ref: "#/$defs/d0" })!, /more than 1000 subschemas/);
  assert.match(
    checkSchema({ $defs: { d: { anyOf: [{ type: "null" }, { $ref: "#/$defs/d" }] } } })!,
    /\$ref loop d -> d never reaches a property or an item/,
  );
  // Recursion through a property is fine.
  const tree = { $defs: { t: { type: "object", properties: { kid: { $ref: "#/$defs/t" } } } } };
  assert.equal(checkSchema({ ...tree, $ref: "#/$defs/t" }), undefined);
});

Deno.test("compileSchema() refuses a value whose checks would read too much, and passes big plain ones", () => {
  const many = compileSchema(
    { anyOf: Array.from({ length: 500 }, () => ({ pattern: "z$" })) },
    { root: "params" },
  );
  assert.match(many("a".repeat(100_000))!, /^params: too complex to check against its schema/);
  assert.match(many("a".repeat(100))!, /matches none of the 500 anyOf alternatives/);
  assert.equal(many("az"), undefined);
  // A big value gets a budget to match: 20,000 objects of 3 properties each pass.
  const rows = compileSchema({
    type: "array",
    items: {
      type: "object",
      required: ["id"],
      properties: { id: { type: "integer" }, name: { type: "string" }, on: { type: "boolean" } },
    },
  });
  const big = Array.from({ length: 20_000 }, (_, id) => ({ id, name: `n${id}`, on: true }));
  assert.equal(rows(big), undefined);
  // A value past the $ref depth limit is refused whole: `not` cannot turn it into a match.
  const hasEvil = {
    $defs: {
      e: {
        anyOf: [{ type: "object", required: ["evil"] }, {
          type: "object",
          required: ["child"],
          properties: { child: { $ref: "#/$defs/e" } },
        }],
      },
    },
    not: { $ref: "#/$defs/e" },
  };
  const clean = compileSchema(hasEvil, { root: "params" });
  const nest = (n: number) => {
    let v: Record<string, unknown> = { evil: true };
    for (let i = 0; i < n; i++) v = { child: v };
    return v;
  };
  assert.match(clean(nest(5))!, /must not match/);
  assert.match(clean(nest(200))!, /^params: nested deeper than 128 \$ref levels/);
  assert.match(
    compileSchema(hasEvil, { root: "c", redact: true })(nest(200))!,
    /^c: nested deeper/,
  );
});

Deno.test("compileSchema() runs patterns in linear time (V8's linear engine), or says how to get it", () => {
  const schema = { type: "string", pattern: "^(a+)+$" };
  if (!LINEAR_REGEXP) {
    assert.throws(() => compileSchema(schema), new RegExp(LINEAR_REGEXP_FLAG));
    assert.equal(compileSchema({ pattern: "^a" }, { linearPatterns: false })("ab"), undefined);
    throw new Error(
      `run the tests with DENO_V8_FLAGS=${LINEAR_REGEXP_FLAG} (deno task test does): the ` +
        "linear engine is what the host runs patterns with",
    );
  }
  const check = compileSchema(schema, { root: "params" });
  assert.match(check("a".repeat(50_000) + "!")!, /expected a string matching/);
  assert.equal(check("aaaa"), undefined);
  assert.match(checkSchema({ pattern: "(a)\\1" })!, /cannot run in linear time/);
  assert.match(checkSchema({ pattern: "(?=a)a" })!, /cannot run in linear time/);
  for (const p of ["^\\p{Lu}+$", "^[^\\P{Cc}]*$", "^\\u{1F600}$", "^[\u{1F600}]$"]) {
    assert.match(checkSchema({ pattern: p })!, /need the u flag/, p);
  }
});

Deno.test("const and enum compare values of any depth, and nest at most 64 levels", () => {
  const nest = (n: number) => {
    let v: unknown = 1;
    for (let i = 0; i < n; i++) v = [v];
    return v;
  };
  assert.match(compileSchema({ not: { const: nest(64) } })(nest(64))!, /must not match/);
  assert.equal(compileSchema({ enum: [nest(64)] })(nest(64)), undefined);
  assert.match(compileSchema({ enum: [nest(64)] })(nest(5000))!, /expected one of/);
  assert.match(checkSchema({ const: nest(65) })!, /const nests deeper than 64 levels/);
  assert.match(checkSchema({ enum: [nest(65)] })!, /enum values nest deeper than 64 levels/);
});

Deno.test("compileSchema() checks multipleOf exactly for integers, by remainder for fractions", () => {
  const two = compileSchema({ multipleOf: 2 });
  assert.match(two(3_000_000_001)!, /multiple of 2/);
  assert.equal(two(3_000_000_002), undefined);
  assert.match(compileSchema({ multipleOf: 1 })(1_500_000_000.5)!, /multiple of 1/);
  assert.match(compileSchema({ multipleOf: 10 })(20_000_000_005)!, /multiple of 10/);
  assert.equal(compileSchema({ multipleOf: 0.1 })(0.3), undefined);
  assert.equal(compileSchema({ multipleOf: 0.01 })(19.99), undefined);
  assert.match(compileSchema({ multipleOf: 0.1 })(0.35)!, /multiple of 0.1/);
});

Deno.test("compileSchema() refuses numbers JSON cannot carry (1e999 parses to Infinity)", () => {
  const check = compileSchema({ minimum: 0 }, { root: "params" });
  assert.equal(check(JSON.parse("1e999")), "params: expected a finite number, got Infinity");
  const nested = compileSchema({ type: "object" }, { root: "params" });
  assert.equal(
    nested(JSON.parse('{"a":[1,{"b":-1e999}]}')),
    "params.a[1].b: expected a finite number, got -Infinity",
  );
});
