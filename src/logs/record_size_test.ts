import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { estimateRecordBytes } from "./record_size.ts";

function record(properties: Record<string, unknown>): LogRecord {
  return {
    category: ["plugsconc", "plugin", "cat"],
    level: "info",
    message: ["", "m", ""],
    rawMessage: "{message}",
    timestamp: 0,
    properties,
  };
}

Deno.test("estimateRecordBytes() counts strings and keys at any depth", () => {
  const small = estimateRecordBytes(record({ plugin: "cat", message: "m" }));
  assert.ok(small < 512, `${small}`);
  const mb = "x".repeat(8_000_000);
  for (
    const props of [
      { blob: mb },
      { fields: { blob: { data: mb } } },
      { list: [[{ deep: [mb] }]] },
      { bytes: new Uint8Array(8_000_000) },
    ]
  ) {
    const n = estimateRecordBytes(record(props));
    assert.ok(n >= 8_000_000 && n < 8_001_000, `${JSON.stringify(Object.keys(props))}: ${n}`);
  }
  const keys = Object.fromEntries(
    Array.from({ length: 1_000 }, (_, i) => [`key-${"k".repeat(100)}-${i}`, i]),
  );
  assert.ok(estimateRecordBytes(record({ keys })) > 100_000);
});

Deno.test("estimateRecordBytes() is bounded: huge, deep or cyclic values count 1 MiB more, and it never throws", () => {
  const many = estimateRecordBytes(record({ list: new Array(1_000_000).fill(1) }));
  assert.ok(many >= 1024 * 1024, `${many}`);
  let deep: unknown = "leaf";
  for (let i = 0; i < 10_000; i++) deep = { deep };
  assert.ok(estimateRecordBytes(record({ deep })) >= 1024 * 1024);
  const cycle: Record<string, unknown> = { name: "c" };
  cycle.self = cycle;
  assert.ok(estimateRecordBytes(record({ cycle })) >= 1024 * 1024);
  const throwing = {
    get bad(): never {
      throw new Error("getter");
    },
  };
  assert.ok(estimateRecordBytes(record({ throwing })) >= 1024 * 1024);
});
