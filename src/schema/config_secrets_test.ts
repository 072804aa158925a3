import assert from "node:assert/strict";
import { maskPaths, maskWriteOnly } from "./config_secrets.ts";

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
