import assert from "node:assert/strict";
import { decodeRows, encodeRow } from "./_row_codec.ts";

Deno.test("encodeRow()/decodeRows() carry any text, including separators, unchanged", () => {
  const rows: unknown[] = [];
  const batch = encodeRow(1, 2, "a:b,c", null, "12:34\n-:x", '{"k":"1:2"}') +
    encodeRow(3.5, 5, "", "p", "", "{}");
  assert.equal(decodeRows(batch, rows), 2);
  assert.deepEqual(rows, [
    1,
    2,
    "a:b,c",
    null,
    "12:34\n-:x",
    '{"k":"1:2"}',
    3.5,
    5,
    "",
    "p",
    "",
    "{}",
  ]);
  assert.throws(() => decodeRows("1,2,99:short", []), SyntaxError);
});
