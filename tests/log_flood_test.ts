/**
 * Issue 17: a plugin with no capabilities must not fill the host's disk or memory through its
 * logs. A real plugin floods the host (which runs in its own process, as `plugsconc run`) with
 * huge `$/log` records (fields nested one level deep, 8 MB each) and huge stderr lines, while a
 * well-behaved plugin keeps logging; the host's peak RSS, the store's size on disk, the drop
 * report and the well-behaved plugin's records are checked.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { LogStore } from "../src/logs/mod.ts";
import { FIXTURE_PLUGINS, makeHome, readUntil, waitFor } from "./_helpers.ts";

const MIB = 1024 * 1024;
const STORE_CAP = 64 * MIB;
const RSS_LIMIT = 300 * MIB;
const FLOOD_BYTES_PER_S = 2 * MIB;

/** A loopback port that was free a moment ago. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

/** The peak resident set size of a process so far (`VmHWM`), in bytes; 0 once it is gone. */
function peakRss(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    return kb === undefined ? 0 : Number(kb) * 1024;
  } catch {
    return 0;
  }
}

function fileSize(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return 0;
  }
}

Deno.test({
  name:
    "a plugin flooding 1 GiB of huge $/log records and stderr lines leaves the host under 300 MB and the store under its cap",
  ignore: Deno.build.os !== "linux", // VmHWM is read from /proc
  async fn() {
    const started = performance.now();
    const port = freePort();
    await using home = await makeHome({
      server: { enabled: true, listen: `127.0.0.1:${port}` },
      watcher: { enabled: false },
      logging: {
        level: "info",
        format: "json",
        store: { max_bytes: STORE_CAP },
        plugin_budget: { report_interval_ms: 2_000 },
      },
      // Its own budget, over the defaults (and 4x their bytes/s).
      plugins: { flood: { log_budget: { bytes_per_s: FLOOD_BYTES_PER_S } } },
    });
    await home.addPlugin(join(FIXTURE_PLUGINS, "flood"));
    await home.addPlugin(join(FIXTURE_PLUGINS, "quiet"));
    const db = join(home.dir, "data", "logs.db");

    const child = home.spawnRun();
    // The host's console (every record as a JSON line): drained, only its end kept.
    let consoleTail = "";
    let consoleBytes = 0;
    const consoleDone = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        consoleBytes += chunk.length;
        consoleTail = (consoleTail + chunk).slice(-8192);
      }
    })();
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const peak = { rss: 0, store: 0 };
    const sample = () => {
      peak.rss = Math.max(peak.rss, peakRss(child.pid));
      peak.store = Math.max(peak.store, fileSize(db) + fileSize(`${db}-wal`));
    };
    const sampler = setInterval(sample, 50);
    const base = `http://127.0.0.1:${port}`;
    const call = async (plugin: string, method: string, params: unknown = {}) => {
      const res = await fetch(`${base}/v1/plugins/${plugin}/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(params),
      });
      const body = await res.json();
      assert.equal(res.status, 200, JSON.stringify(body));
      return body.result;
    };
    let status: Deno.CommandStatus | undefined;
    let flood: { done: boolean; attemptedBytes: number; logRecords: number; ms: number };
    let metrics = "";
    let floodEnd = 0;
    let floodWindow = [0, 0];
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const out = await readUntil(reader);
      reader.releaseLock();
      void child.stdout.cancel().catch(() => {});
      assert.match(out, /^flood\s+\S+\s+ready\s/m, out + consoleTail);
      assert.match(out, /^quiet\s+\S+\s+ready\s/m, out + consoleTail);
      const rssAtStart = peakRss(child.pid);

      assert.equal(await call("quiet", "start", { intervalMs: 100 }), "started");
      // 1 GiB: 8 MB nested fields (half of them not written by the SDK), 4 MB stderr lines,
      // 48 KiB records between them; at most 20 s.
      const floodStart = Date.now();
      assert.equal(await call("flood", "flood", { seconds: 20 }), "started");
      assert.ok(
        await waitFor(async () => (flood = await call("flood", "status")).done, 30_000),
        `the flood did not end: ${JSON.stringify(flood!)}`,
      );
      floodEnd = Date.now();
      floodWindow = [floodStart, floodEnd];
      // The well-behaved plugin's record after the flood, and one drop report interval.
      const last = await call("quiet", "last");
      await new Promise((r) => setTimeout(r, 2_500));
      sample();
      metrics = await (await fetch(`${base}/metrics`)).text();
      console.log(
        JSON.stringify({
          rss_at_start_mb: Math.round(rssAtStart / MIB),
          flood_ms: flood!.ms,
          attempted_mb: Math.round(flood!.attemptedBytes / MIB),
          flood_log_records: flood!.logRecords,
          console_mb: Math.round(consoleBytes / MIB),
        }),
      );
      child.kill("SIGINT");
      status = await child.status;
      await consoleDone;
      assert.equal(status.code, 0, consoleTail);

      const after = fileSize(db) + fileSize(`${db}-wal`);
      console.log(JSON.stringify({
        peak_rss_mb: Math.round(peak.rss / MIB),
        peak_store_mb: Math.round(peak.store / MIB * 10) / 10,
        store_after_mb: Math.round(after / MIB * 10) / 10,
      }));
      // Memory: the host's peak RSS over the whole run.
      assert.ok(peak.rss > 0, "no VmHWM was read");
      assert.ok(
        peak.rss < RSS_LIMIT,
        `host peak RSS ${Math.round(peak.rss / MIB)} MiB >= ${RSS_LIMIT / MIB} MiB`,
      );
      // Disk: the database and its write-ahead log stayed under the cap all along.
      assert.ok(after < STORE_CAP, `store is ${after} bytes after the run`);
      assert.ok(peak.store < STORE_CAP, `store reached ${peak.store} bytes during the run`);

      await using store = await LogStore.open(db, { readOnly: true });
      const stats = store.stats();
      // The drops were counted and reported, as a warning of the flooding plugin.
      const reports = store.query({ plugin: "flood", grep: "over its log budget" });
      assert.ok(reports.length >= 1, "no drop report in the store");
      assert.match(
        reports[0]!.message,
        /^plugin flood: \d+ log records \(\d+ bytes\) over its log budget were dropped in the last [\d.]+ s$/,
      );
      assert.equal(reports[0]!.level, "warning");
      assert.equal(reports[0]!.properties.bytesPerS, FLOOD_BYTES_PER_S, "the plugin's override");
      const dropped = /plugsconc_plugin_log_dropped_total\{plugin="flood"\} (\d+)/.exec(metrics);
      assert.ok(dropped && Number(dropped[1]) > 0, metrics);
      // No stored record of the plugin is bigger than its cap (64 KiB and a little framing).
      const biggest = store.query({ plugin: "flood", limit: 2_000 }).reduce(
        (n, e) => Math.max(n, e.message.length + JSON.stringify(e.properties).length),
        0,
      );
      assert.ok(biggest <= 64 * 1024 + 512, `a stored flood record has ${biggest} bytes`);
      // The well-behaved plugin's records are all there: every tick (one per 100 ms, the flood's
      // time included) and the last record, logged after the flood.
      const ticks = store.query({ plugin: "quiet", grep: "quiet tick", limit: 10_000 });
      const numbers = ticks.map((e) => Number(e.properties.n));
      assert.deepEqual(
        numbers,
        numbers.map((_, i) => i + 1),
        `a quiet record is missing: ${numbers}`,
      );
      const during = ticks.filter((e) => e.ts >= floodWindow[0]! && e.ts <= floodWindow[1]!);
      // (Timers of a loaded machine run late: half of one per 100 ms is enough.)
      const expected = Math.floor((floodWindow[1]! - floodWindow[0]!) / 200);
      assert.ok(during.length >= expected, `${during.length} quiet records during the flood`);
      assert.equal(store.query({ plugin: "quiet", grep: `quiet last ${last}` }).length, 1);
      console.log(JSON.stringify({
        rows: stats.rows,
        first_seq: stats.firstSeq,
        last_seq: stats.lastSeq,
        dropped_metric: Number(dropped[1]),
        drop_reports: reports.length,
        quiet_records: ticks.length,
        quiet_records_during_flood: during.length,
        test_s: Math.round((performance.now() - started) / 100) / 10,
      }));
    } finally {
      clearInterval(sampler);
      clearTimeout(killer);
      if (status === undefined) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.status;
        await consoleDone.catch(() => {});
      }
    }
  },
});
