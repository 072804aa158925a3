import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import {
  decodeText,
  levelName,
  levelNumber,
  MAX_TEXT_BYTES,
  propertiesJson,
  recordPlugin,
  renderMessage,
  safeJson,
  sanitizeText,
  truncateUtf8,
} from "./record_text.ts";

function record(partial: Partial<LogRecord>): LogRecord {
  return {
    category: ["plugsconc", "test"],
    level: "info",
    message: [""],
    rawMessage: "",
    timestamp: 0,
    properties: {},
    ...partial,
  };
}

Deno.test("sanitizeText() escapes ANSI and control characters but keeps tab and newline", () => {
  assert.equal(
    sanitizeText("\x1b[31mred\x1b[0m\x07 a\tb\nc\x9b"),
    "\\u001b[31mred\\u001b[0m\\u0007 a\tb\nc\\u009b",
  );
  assert.equal(sanitizeText("plain"), "plain");
});

Deno.test("sanitizeText() replaces lone surrogates with U+FFFD", () => {
  assert.equal(sanitizeText("a\ud800b"), "a\ufffdb");
  assert.equal(sanitizeText("😀"), "😀");
});

Deno.test("truncateUtf8() cuts a 10 MiB+ line at a character boundary and marks it", () => {
  const line = "é".repeat(MAX_TEXT_BYTES / 2 + 10); // 2 bytes each: 20 bytes too long
  const cut = truncateUtf8(line);
  assert.match(cut, / …\[truncated 20 bytes\]$/);
  const kept = cut.slice(0, cut.indexOf(" …["));
  assert.equal(new TextEncoder().encode(kept).length, MAX_TEXT_BYTES);
  // A 3-byte character straddling the limit is dropped whole, not split.
  const odd = "a" + "€".repeat(5);
  assert.equal(truncateUtf8(odd, 8), "a€€ …[truncated 9 bytes]");
  assert.equal(truncateUtf8("short", 8), "short");
});

Deno.test("decodeText() replaces invalid UTF-8", () => {
  assert.equal(decodeText(new Uint8Array([0x61, 0xff, 0xfe, 0x62])), "a\ufffd\ufffdb");
});

Deno.test("levelNumber() and levelName() round-trip and accept warn", () => {
  assert.deepEqual(
    ["trace", "debug", "info", "warning", "error", "fatal"].map((l) => levelName(levelNumber(l))),
    ["trace", "debug", "info", "warning", "error", "fatal"],
  );
  assert.equal(levelNumber("warn"), 3);
  assert.equal(levelName(99), "fatal");
});

Deno.test("safeJson() never throws: bigint, cycles, errors, bytes", () => {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  assert.deepEqual(JSON.parse(safeJson(cyclic)), { a: 1, self: "[Circular]" });
  assert.deepEqual(JSON.parse(safeJson({ n: 10n })), { n: "10" });
  const err = Object.assign(new TypeError("bad"), { code: "E_BAD" });
  assert.deepEqual(JSON.parse(safeJson({ error: err })), {
    error: { name: "TypeError", message: "bad", code: "E_BAD" },
  });
  assert.deepEqual(JSON.parse(safeJson({ b: new TextEncoder().encode("hi") })), { b: "hi" });
  assert.equal(safeJson({ f: () => 1, s: "x" }), '{"s":"x"}');
});

Deno.test("renderMessage() fills the template with unquoted strings and JSON values", () => {
  assert.equal(
    renderMessage(
      record({ message: ["plugin ", "cat", " ready in ", 12.5, " ms ", { a: [1] }, ""] }),
    ),
    'plugin cat ready in 12.5 ms {"a":[1]}',
  );
  assert.equal(renderMessage(record({ message: ["", "only", ""] })), "only");
  assert.equal(
    renderMessage(record({ message: ["e: ", new Error("boom"), ""] })),
    "e: Error: boom",
  );
});

Deno.test("recordPlugin() and propertiesJson() move plugin and {message} to their own columns", () => {
  const r = record({
    category: ["plugsconc", "plugin", "cat"],
    rawMessage: "{message}",
    message: ["", "meow", ""],
    properties: { plugin: "cat", message: "meow", stream: "stderr" },
  });
  assert.equal(recordPlugin(r), "cat");
  assert.deepEqual(JSON.parse(propertiesJson(r, "cat")), { stream: "stderr" });
  // A host record about a plugin: plugin from the property, the message property is kept.
  const h = record({
    category: ["plugsconc", "host"],
    rawMessage: "plugin {plugin}: {message}",
    properties: { plugin: "dog", message: "x" },
  });
  assert.equal(recordPlugin(h), "dog");
  assert.deepEqual(JSON.parse(propertiesJson(h, "dog")), { message: "x" });
  assert.equal(recordPlugin(record({ category: ["plugsconc", "host"] })), null);
});

Deno.test("propertiesJson() escapes DEL and C1 controls (8-bit CSI) as JSON does C0, and still parses back", () => {
  const value = "a\x1b[2Jb\x7fc\x9b31md\x85e";
  const json = propertiesJson(record({ properties: { field: value, nested: { v: value } } }), null);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(json, /[\x00-\x1f\x7f-\x9f]/);
  assert.ok(json.includes("\\u009b") && json.includes("\\u007f") && json.includes("\\u001b"), json);
  assert.deepEqual(JSON.parse(json), { field: value, nested: { v: value } });
});
