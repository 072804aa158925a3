import assert from "node:assert/strict";
import { capRecord, clip, jsonLength, messageRoom, quote } from "./record_cap.ts";

/** What a record costs once serialised: the message plus the JSON of its fields. */
const serialised = (r: { message: string; fields: unknown }) =>
  r.message.length + JSON.stringify(r.fields).length;

Deno.test("jsonLength() is the length of JSON.stringify() for JSON data", () => {
  const values: unknown[] = [
    null,
    true,
    false,
    0,
    -1.5e-7,
    1e21,
    "",
    "plain",
    'quote " backslash \\ newline \n tab \t bell \x07',
    "unicode é 😀 and a lone \ud800 surrogate",
    [],
    [1, "two", [3, [4]], { five: 5 }],
    { a: 1, b: [true, null], "c\nd": { e: "f" } },
    JSON.parse('{"__proto__": {"x": 1}, "y": [{}, []]}'),
  ];
  for (const v of values) {
    assert.equal(jsonLength(v, 1e6), JSON.stringify(v).length, JSON.stringify(v));
  }
  // Properties JSON leaves out, and array holes it writes as null.
  assert.equal(
    jsonLength({ a: undefined, b: 1 }, 100),
    JSON.stringify({ a: undefined, b: 1 }).length,
  );
  assert.equal(jsonLength([undefined, 1], 100), JSON.stringify([undefined, 1]).length);
});

Deno.test("jsonLength() stops past its limit, however big or deep the value", () => {
  const huge = new Array(5_000_000).fill(0);
  assert.ok(jsonLength(huge, 1_000) > 1_000);
  assert.ok(jsonLength({ blob: { data: "x".repeat(8_000_000) } }, 65_536) >= 8_000_000);
  let deep: unknown = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.ok(jsonLength(deep, 1e9) > 1e9, "too deep counts as too big");
  const wide: Record<string, number> = {};
  for (let i = 0; i < 100_000; i++) wide[`k${i}`] = i;
  assert.ok(jsonLength(wide, 4_096) > 4_096);
});

Deno.test("capRecord() keeps a record that fits as it is and measures it as serialised", () => {
  const fields = { answer: 42, nested: { list: [1, 2, 3], text: 'hé "quoted"' } };
  const r = capRecord("hello \x1b[31mred", fields, 64 * 1024);
  assert.equal(r.message, "hello \\u001b[31mred");
  assert.deepEqual(r.fields, fields);
  // One comma per field more than JSON at most.
  const exact = serialised(r);
  assert.ok(r.bytes >= exact && r.bytes <= exact + 2, `${r.bytes} vs ${exact}`);
  assert.equal(r.sentBytes >= "hello \x1b[31mred".length + JSON.stringify(fields).length, true);
});

Deno.test("capRecord() cuts a long message before escaping it and marks its original length", () => {
  const max = 4096;
  const long = "\x1b".repeat(1_000_000); // escapes to 6 characters each
  const r = capRecord(long, undefined, max);
  assert.ok(r.message.length <= messageRoom(max), `${r.message.length}`);
  assert.match(r.message, /^(\\u001b)+ …\[truncated, \d+ characters in all\]$/);
  assert.equal(r.fields.message_length, 1_000_000);
  assert.ok(serialised(r) <= max);
  const plain = capRecord("y".repeat(10_000_000), { small: 1 }, max);
  assert.match(plain.message, /^y+ …\[truncated, 10000000 characters in all\]$/);
  assert.equal(plain.fields.small, 1);
  assert.equal(plain.sentBytes >= 10_000_000, true);
  // A surrogate pair is never split by the cut.
  const emoji = capRecord("😀".repeat(5_000), undefined, 1024);
  assert.ok(emoji.message.isWellFormed());
});

Deno.test("capRecord() replaces fields past the cap by a note, keeping the ones that fit", () => {
  const max = 64 * 1024;
  const fields = {
    method: "flood",
    blob: { data: "x".repeat(8_000_000), i: 7 },
    mid: "m".repeat(40_000),
    also: "y".repeat(40_000), // fits alone, not after mid
    n: 1,
  };
  const r = capRecord("flood record", fields, max);
  assert.equal(r.fields.method, "flood");
  assert.equal(r.fields.mid, fields.mid);
  assert.equal(r.fields.n, 1);
  assert.equal(r.fields.blob, undefined);
  assert.equal(r.fields.also, undefined);
  assert.deepEqual(r.fields.fields_dropped, ["blob", "also"]);
  assert.ok(Number(r.fields.fields_truncated) >= 8_040_000, String(r.fields.fields_truncated));
  assert.ok(serialised(r) <= max, `${serialised(r)} > ${max}`);
  assert.ok(r.bytes >= serialised(r) - 8);
  // What was sent is charged, not what was kept.
  assert.ok(r.sentBytes >= 8_080_000);
  // Many oversized fields: a bounded list of names, and the note still fits a small cap.
  const many = Object.fromEntries(
    Array.from({ length: 100 }, (_, i) => [`f${i}`, "z".repeat(300)]),
  );
  const small = capRecord("m", many, 256);
  assert.ok(serialised(small) <= 256, JSON.stringify(small));
  assert.match(String((small.fields.fields_dropped as string[]).at(-1)), /^…\d+ more$/);
  assert.throws(() => capRecord("m", undefined, 100), RangeError);
});

Deno.test("quote() and clip() show at most a bounded part of what a plugin sent", () => {
  assert.equal(quote("cat"), '"cat"');
  assert.equal(quote(2), "2");
  assert.equal(quote({ v: 1 }), '{"v":1}');
  assert.equal(quote({ v: "x".repeat(1000) }), "a big JSON object");
  assert.ok(quote("x".repeat(10_000_000)).length < 210);
  assert.equal(clip("short", 10), "short");
  assert.match(clip("x".repeat(1000), 100), /^x+ …\[truncated, 1000 characters in all\]$/);
});
