import assert from "node:assert/strict";
import { join } from "node:path";
import { attachAuditTrail, auditEvent, setAuditRateLimit } from "./audit_hook.ts";
import { AuditTrail } from "./audit_trail.ts";

async function tempTrail() {
  const dir = await Deno.makeTempDir({ prefix: "plugsconc-audit-hook-" });
  const trail = AuditTrail.open(join(dir, "audit.db"), { actor: "test" });
  return {
    trail,
    [Symbol.asyncDispose]: async () => {
      trail.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("auditEvent() keeps 50 of 500 events and writes the other 450 as one audit.suppressed row at detach", async () => {
  await using t = await tempTrail();
  const detach = attachAuditTrail(t.trail);
  for (let i = 0; i < 500; i++) {
    auditEvent({ kind: "process.refused", plugin: "evil", detail: { i } });
  }
  detach();
  detach(); // harmless twice
  const rows = t.trail.query({ limit: 1000 });
  assert.equal(rows.filter((r) => r.kind === "process.refused").length, 50);
  const suppressed = rows.filter((r) => r.kind === "audit.suppressed");
  assert.equal(suppressed.length, 1);
  assert.equal(suppressed[0]!.plugin, "evil");
  assert.deepEqual(JSON.parse(suppressed[0]!.detail), {
    kind: "process.refused",
    count: 450,
    windowMs: 10_000,
  });
  assert.equal(rows.length, 51);
});

Deno.test("auditEvent() writes the suppressed count when its window ends, with no later event", async () => {
  const old = setAuditRateLimit({ events: 2, windowMs: 100 });
  await using t = await tempTrail();
  const detach = attachAuditTrail(t.trail);
  try {
    for (let i = 0; i < 5; i++) auditEvent({ kind: "gateway.auth_failed", detail: { i } });
    assert.equal(t.trail.query({ kind: "audit.suppressed" }).length, 0);
    const deadline = Date.now() + 5000;
    while (t.trail.query({ kind: "audit.suppressed" }).length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const rows = t.trail.query({ kind: "audit.suppressed" });
    assert.equal(rows.length, 1);
    assert.equal(JSON.parse(rows[0]!.detail).count, 3);
  } finally {
    detach();
    setAuditRateLimit(old);
  }
  // Nothing is written twice at detach.
  assert.equal(t.trail.query({ kind: "audit.suppressed" }).length, 1);
});
