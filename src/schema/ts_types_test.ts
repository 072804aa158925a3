import assert from "node:assert/strict";
import { clientTypeName, generateTypes, pascalCase } from "./ts_types.ts";

Deno.test("generateTypes() maps schemas to TypeScript types and a client interface", () => {
  const out = generateTypes({
    name: "cat-tools",
    version: "1.0.0",
    methods: {
      speak: {
        params: {
          type: "object",
          required: ["loud"],
          additionalProperties: false,
          properties: {
            loud: { type: "boolean" },
            "odd key": { enum: ["a", 1, null] },
            pair: {
              type: "array",
              prefixItems: [{ type: "string" }, { type: "integer" }],
              minItems: 2,
              items: false,
            },
          },
        },
        result: { anyOf: [{ type: "string" }, { type: "null" }] },
      },
      "do.it": {},
      map: { params: { type: "object", additionalProperties: { type: "number" } } },
    },
  });
  assert.match(
    out,
    /export type CatToolsSpeakParams = \{\n {2}loud: boolean;\n {2}"odd key"\?: "a" \| 1 \| null;\n {2}pair\?: \[string, number\];\n\};/,
  );
  assert.match(out, /export type CatToolsSpeakResult = \(string \| null\);/);
  assert.match(out, /export type CatToolsMapParams = \{\n {2}\[key: string\]: number;\n\};/);
  assert.match(
    out,
    /"do\.it"\(params\?: CatToolsDoItParams, options\?: CallOptions\): Promise<CatToolsDoItResult>;/,
  );
  assert.match(out, /speak\(params: CatToolsSpeakParams, /);
  assert.match(out, /export interface CatToolsPlugin \{/);
  assert.equal(pascalCase("9lives"), "_9lives");
  assert.equal(clientTypeName("cat"), "CatPlugin");
});
