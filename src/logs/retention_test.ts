import assert from "node:assert/strict";
import { join } from "node:path";
import { LogStore } from "./log_store.ts";
import { sizeCapPlan } from "./retention.ts";

const MIB = 1024 * 1024;

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

Deno.test("sizeCapPlan() leaves room below the cap for the WAL and the batch that crossed the mark", () => {
  for (const cap of [8 * MIB, 64 * MIB, 1024 * MIB]) {
    const p = sizeCapPlan(cap);
    assert.ok(p.highBytes + p.walBytes + 2 * p.batchBytes <= cap, JSON.stringify(p));
    assert.ok(p.lowBytes < p.highBytes && p.lowBytes >= cap / 2, JSON.stringify(p));
    assert.equal(p.walAutocheckpointPages, Math.floor(p.walBytes / 8192));
  }
  // No cap: what the store does without one (40 MiB of WAL, 8 MiB batches).
  const big = sizeCapPlan(1024 * MIB);
  assert.equal(big.walBytes, 40 * MIB);
  assert.equal(big.batchBytes, 8 * MIB);
  assert.throws(() => sizeCapPlan(0), RangeError);
  assert.throws(() => sizeCapPlan(1.5), RangeError);
});

Deno.test("capSize() keeps a database written 6x past its cap under it: oldest rows gone, newest kept", async () => {
  const dir = await Deno.makeTempDir({ prefix: "plugsconc-cap-" });
  try {
    const path = join(dir, "logs.db");
    using store = LogStore.openSync(path);
    const cap = 8 * MIB;
    const plan = sizeCapPlan(cap);
    const text = "r".repeat(4_000);
    let seq = 0;
    let deleted = 0;
    let peak = 0;
    let checks = 0;
    // 48 MiB in batches of ~200 KiB, each followed by the check the writer makes.
    while (seq < 12_000) {
      const batch = Array.from({ length: 50 }, () => ({
        ts: Date.now(),
        level: "info" as const,
        category: "plugsconc.plugin.flood",
        plugin: "flood",
        message: `record ${++seq}`,
        properties: { text },
      }));
      store.append(batch);
      const r = store.capSize(plan);
      deleted += r.deleted;
      checks++;
      const onDisk = fileSize(path) + fileSize(`${path}-wal`);
      peak = Math.max(peak, onDisk);
      assert.ok(onDisk < cap, `${onDisk} bytes on disk after record ${seq}`);
      assert.ok(r.fileBytes < cap);
    }
    const stats = store.stats();
    assert.ok(deleted > 8_000, `deleted ${deleted}`);
    assert.equal(stats.rows, 12_000 - deleted);
    assert.equal(stats.firstSeq, deleted + 1, "the oldest rows are the ones deleted");
    assert.equal(stats.lastSeq, 12_000);
    assert.equal(store.query({ grep: "record 12000", limit: 1 })[0]?.message, "record 12000");
    assert.equal(store.query({ grep: "record 1 ", limit: 1 }).length, 0);
    // The cap is used, not undercut: the file grows to near the mark, then pages are reused.
    assert.ok(peak > plan.lowBytes, `peak ${peak}`);
    assert.ok(stats.sizeBytes < cap);
    // Nothing to do: nothing deleted.
    assert.equal(store.capSize(plan).deleted, 0);
    assert.ok(checks > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
