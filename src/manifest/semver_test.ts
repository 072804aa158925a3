import assert from "node:assert/strict";
import { isValidRange, satisfies } from "./semver.ts";

Deno.test("satisfies() handles comparators, caret, tilde, x-ranges and alternatives", () => {
  const table: [string, string, boolean][] = [
    ["0.1.0", ">=0.1.0", true],
    ["0.0.9", ">=0.1.0", false],
    ["1.4.2", ">=1.2.0 <2", true],
    ["2.0.0", ">=1.2.0 <2", false],
    ["1.9.9", "^1.2.0", true],
    ["2.0.0", "^1.2.0", false],
    ["0.1.5", "^0.1.0", true],
    ["0.2.0", "^0.1.0", false],
    ["1.2.9", "~1.2.0", true],
    ["1.3.0", "~1.2.0", false],
    ["1.7.0", "1.x", true],
    ["2.0.0", "1.x", false],
    ["3.0.0", "^1.0.0 || ^3.0.0", true],
    ["1.2.3", "*", true],
  ];
  for (const [v, r, want] of table) assert.equal(satisfies(v, r), want, `${v} ${r}`);
});

Deno.test("isValidRange() rejects text that is not a range", () => {
  assert.equal(isValidRange(">=0.1.0 <1"), true);
  assert.equal(isValidRange("lots"), false);
  assert.equal(isValidRange(">= one"), false);
});
