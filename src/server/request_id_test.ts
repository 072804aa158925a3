import assert from "node:assert/strict";
import { requestIdOf } from "./request_id.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

Deno.test("requestIdOf() keeps a sane client id", () => {
  for (const id of ["abc-123", "01HZX3V6Q9T1Y8", "trace:span/1+x=", "a".repeat(128)]) {
    assert.equal(requestIdOf(id), id);
  }
});

Deno.test("requestIdOf() replaces a missing, over-long or unsafe id with a new UUID", () => {
  for (const id of [null, "", "a".repeat(129), "with space", "new\nline", 'quote"', "é"]) {
    assert.match(requestIdOf(id), UUID, String(id));
  }
  assert.notEqual(requestIdOf(null), requestIdOf(null));
});
