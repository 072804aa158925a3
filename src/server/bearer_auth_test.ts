import assert from "node:assert/strict";
import { BearerAuth } from "./bearer_auth.ts";

const TOKEN = "0123456789abcdef-secret";

Deno.test("BearerAuth accepts the token in any case of the scheme and nothing else", () => {
  const auth = new BearerAuth(TOKEN);
  assert.equal(auth.check(`Bearer ${TOKEN}`), "ok");
  assert.equal(auth.check(`bearer ${TOKEN}`), "ok");
  assert.equal(auth.check(`Bearer ${TOKEN}x`), "invalid");
  assert.equal(auth.check(`Bearer ${TOKEN.slice(0, -1)}`), "invalid");
  assert.equal(auth.check("Bearer short"), "invalid");
});

Deno.test("BearerAuth treats a missing header or another scheme as missing", () => {
  const auth = new BearerAuth(TOKEN);
  assert.equal(auth.check(null), "missing");
  assert.equal(auth.check(`Basic ${btoa(`u:${TOKEN}`)}`), "missing");
  assert.equal(auth.check("Bearer"), "missing");
  assert.equal(auth.check(`Bearer ${TOKEN} extra`), "missing");
});

Deno.test("BearerAuth refuses a token shorter than 16 characters", () => {
  assert.throws(() => new BearerAuth("too-short"), RangeError);
});
