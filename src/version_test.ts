import assert from "node:assert/strict";
import { compareVersions, denoVersionProblem } from "./version.ts";

Deno.test("denoVersionProblem() refuses a Deno older than 2.5 in one line naming both versions", () => {
  const problem = denoVersionProblem("2.4.5");
  assert.ok(problem !== undefined);
  assert.match(problem, /needs Deno 2\.5\.0 or newer, but found Deno 2\.4\.5/);
  assert.equal(problem.includes("\n"), false);
  assert.equal(denoVersionProblem("2.5.0"), undefined);
  assert.equal(denoVersionProblem("2.9.6"), undefined);
  assert.equal(denoVersionProblem("3.0.0-rc.1"), undefined);
});

Deno.test("compareVersions() compares numerically, not as text", () => {
  assert.ok(compareVersions("2.10.0", "2.9.0") > 0);
  assert.ok(compareVersions("1.46.3", "2.5.0") < 0);
  assert.equal(compareVersions("2.5", "2.5.0"), 0);
});
