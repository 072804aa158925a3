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
import { chromium } from "playwright-core";
import { Gateway } from "../../src/server/mod.ts";
import { makeHome, SAMPLE_PLUGINS } from "../../tests/_helpers.ts";
import { median, round } from "./_common.ts";

const LOADS = 5;
const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

await using home = await makeHome({ watcher: { enabled: false } });
await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
await home.addPlugin(join(SAMPLE_PLUGINS, "dog"));
await using host = await home.startHost();
await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
});
const loads: { bytes: number; files: number; firstRenderMs: number }[] = [];
try {
  for (let i = 0; i < LOADS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    let bytes = 0;
    let files = 0;
    page.on("requestfinished", async (r) => {
      if (r.url().endsWith("/dashboard/events")) return;
      const s = await r.sizes();
      bytes += s.responseBodySize + s.responseHeadersSize;
      files++;
    });
    await page.goto(gateway.url + "/");
    await page.waitForFunction(() =>
      performance.getEntriesByName("plugsconc-first-render").length > 0
    );
    for (let n = 0; files < 5 && n < 250; n++) await page.waitForTimeout(20);
    const firstRenderMs = await page.evaluate(() =>
      performance.getEntriesByName("plugsconc-first-render")[0]!.startTime
    );
    loads.push({ bytes, files, firstRenderMs: round(firstRenderMs) });
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
