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

Deno.test("generateTypes() output runs nothing a manifest says, whatever its names and texts", async () => {
  const payload = 'globalThis.PWNED = "code from a manifest ran";';
  const out = generateTypes({
    name: "evil",
    version: "1.0.0",
    methods: {
      [`x*/}\n${payload}\ninterface Q {/*`]: { result: { type: "string" } },
      [`y\u2028${payload}//`]: {},
      ok: {
        params: {
          title: `t */ ${payload} /*`,
          description: `line\r${payload}\u2029*/${payload}`,
          type: "object",
          properties: { [`k*/${payload}/*`]: { type: "string", description: "*/" + payload } },
          $defs: { "%61": { type: "string" } },
        },
      },
    },
  });
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/types.ts`, out);
    // A value import runs the module (a type-only import would be dropped).
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      'import * as t from "./types.ts";\nconsole.log(JSON.stringify([Object.keys(t), ' +
        "(globalThis as { PWNED?: string }).PWNED ?? null]));\n",
    );
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--no-lock", `${dir}/main.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, stderr);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(run.stdout)), [[], null]);
    const check = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--no-config", "--no-lock", `${dir}/types.ts`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
