import assert from "node:assert/strict";
import { incompleteLines } from "./permission_report.ts";

Deno.test("incompleteLines() says nothing for complete totals and names unexamined checks", () => {
  assert.deepEqual(
    incompleteLines({ overflow: 0, deniedOverflow: 0, skipped: 0, malformed: 0 }, ""),
    [],
  );
  const lines = incompleteLines({ overflow: 2, deniedOverflow: 0, skipped: 7, malformed: 1 }, "# ");
  assert.equal(lines[0], "# INCOMPLETE: the audit did not hold every check");
  assert.match(lines[1]!, /^# {3}7 check\(s\) not examined .*a denied attempt may be among them/);
  assert.ok(lines.some((l) => /2 granted check\(s\)/.test(l)));
  assert.ok(lines.some((l) => /1 audit line\(s\) that were not checks/.test(l)));
});
