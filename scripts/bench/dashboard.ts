/**
 * Dashboard weight and time to first render (issue 14). Prints one JSON object on stdout.
 *
 * The host (sample plugins `cat` and `dog`) and its gateway run in this process; Debian's
 * Chromium (`/usr/bin/chromium`, or `CHROMIUM_PATH`) loads `GET /` five times, each in a fresh
 * browser context (cold cache). Per load: bytes over the wire of the page's files (headers +
 * body as sent, gzip; the event stream is left out, it never ends) and the time from navigation
 * start to the page's `plugsconc-first-render` mark (the plugin table filled from the first
 * event-stream snapshot). Loopback only.
 *
 * Usage: `deno run -A scripts/bench/dashboard.ts` (about 10 s).
 *
 * @module
 */
import { join } from "node:path";
import { Gateway } from "../../src/server/mod.ts";
import { countPageBytes, launchChromium } from "../../tests/_chromium.ts";
import { makeHome, SAMPLE_PLUGINS } from "../../tests/_helpers.ts";
import { median, round } from "./_common.ts";

const LOADS = 5;

await using home = await makeHome({ watcher: { enabled: false } });
await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
await home.addPlugin(join(SAMPLE_PLUGINS, "dog"));
await using host = await home.startHost();
await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
const browser = await launchChromium();
const loads: { bytes: number; files: number; firstRenderMs: number }[] = [];
try {
  for (let i = 0; i < LOADS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    const count = countPageBytes(page);
    await page.goto(gateway.url + "/");
    await page.waitForFunction(() =>
      performance.getEntriesByName("plugsconc-first-render").length > 0
    );
    for (let n = 0; count.files < 5 && n < 250; n++) await page.waitForTimeout(20);
    const firstRenderMs = await page.evaluate(() =>
      performance.getEntriesByName("plugsconc-first-render")[0]!.startTime
    );
    loads.push({ bytes: count.bytes, files: count.files, firstRenderMs: round(firstRenderMs) });
    await context.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({
  dashboard: {
    loads,
    bytes_over_wire_median: median(loads.map((l) => l.bytes)),
    first_render_ms_median: round(median(loads.map((l) => l.firstRenderMs))),
  },
}));
