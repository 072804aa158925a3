/**
 * The gateway's dashboard (`GET /`) in a real headless Chromium (Debian's `chromium`, driven
 * by `playwright-core`), against real plugin processes: the sample plugins listed as ready, a
 * call from the form, a stop seen live through the event stream, a plugin's markup shown as
 * text, and the token asked for before any data shows. Prints the page's bytes over the wire
 * and its time to first render (no timed assertions: the 2 s for a stop is a requirement of
 * liveness, not a benchmark).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { loadConfig } from "../src/config/mod.ts";
import { PluginHost } from "../src/host/mod.ts";
import { setupHostLogging } from "../src/logs/mod.ts";
import { Gateway } from "../src/server/mod.ts";
import { MAX_EVENT_STREAMS } from "../src/server/dashboard/mod.ts";
import { countPageBytes, launchChromium } from "./_chromium.ts";
import { FIXTURE_PLUGINS, makeHome, SAMPLE_PLUGINS, type TestHome } from "./_helpers.ts";

const TOKEN = "dashboard-token-0123456789";
const PAYLOAD = "<img src=x onerror=alert(1)>";

async function dashboardHome(): Promise<TestHome> {
  const home = await makeHome({
    watcher: { enabled: true, reload: true, debounce_ms: 100 },
    logging: { level: "info", store: { enabled: true } },
  });
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await home.addPlugin(join(SAMPLE_PLUGINS, "dog"));
  await home.addPlugin(join(FIXTURE_PLUGINS, "dashboard_xss"), { as: "dashboard-xss" });
  return home;
}

/** Like `run`: the log store's sink first, then the host writing to that store. */
async function startAll(home: TestHome, token?: string) {
  const loaded = await loadConfig(home.configPath);
  const logging = await setupHostLogging(loaded.config, { write: () => {} });
  const host = await PluginHost.start({ config: loaded, logStore: logging.store });
  const gateway = await Gateway.start(host, {
    listen: "127.0.0.1:0",
    token,
    logSink: logging.sink,
  });
  return {
    host,
    gateway,
    logging,
    async [Symbol.asyncDispose]() {
      await gateway.close();
      await host.stop();
      await logging[Symbol.asyncDispose]();
    },
  };
}

const stateOf = (page: Page, plugin: string) =>
  page.locator(`#plugins tr[data-plugin="${plugin}"] td.state`);

Deno.test("the dashboard shows live plugins, calls them and never runs their markup", async (t) => {
  await using home = await dashboardHome();
  await using env = await startAll(home);
  await using browser = await launchChromium();
  const page = await browser.newPage();
  const dialogs: string[] = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  const loaded = countPageBytes(page);

  await t.step("the page lists the sample plugins as ready", async () => {
    await page.goto(env.gateway.url + "/");
    for (const name of ["cat", "dog", "dashboard-xss"]) {
      await stateOf(page, name).filter({ hasText: "ready" }).waitFor({ timeout: 10_000 });
    }
    const firstRender = await page.evaluate(() =>
      performance.getEntriesByName("plugsconc-first-render")[0]?.startTime ?? -1
    );
    // The stream never goes idle: wait for the page's five files instead.
    while (loaded.files < 5) await page.waitForTimeout(20);
    assert.ok(firstRender > 0, "the page marks its first render");
    console.log(
      JSON.stringify({ dashboard: { bytesOverWire: loaded.bytes, firstRenderMs: firstRender } }),
    );
    // cat asks for nothing: what it gets is the handshake variable's name, never a value.
    const grants = await page.locator('#plugins tr[data-plugin="cat"] td.grants').textContent();
    assert.match(grants!, /^sees env [A-Z_]+$/);
  });

  await t.step("a call from the form returns its result", async () => {
    await page.selectOption("#call-plugin", "cat");
    await page.selectOption("#call-method", "speak");
    await page.fill("#call-params", '{"loud": true}');
    await page.click("#call button[type=submit]");
    await page.locator("#call-result").filter({ hasText: "MEOW!" }).waitFor({ timeout: 5000 });
    assert.match((await page.locator("#call-result").textContent())!, /^200 /);
  });

  await t.step("a plugin's markup in a log record shows as text and opens no dialog", async () => {
    await env.host.call("dashboard-xss", "shout", {});
    await env.logging.sink!.flush();
    const cell = page.locator("#logs td.message").filter({ hasText: PAYLOAD });
    await cell.first().waitFor({ timeout: 5000 });
    assert.equal(await cell.first().textContent(), PAYLOAD);
    assert.equal(await page.locator("#logs img").count(), 0, "no element made of the message");
    await page.waitForTimeout(300);
    assert.deepEqual(dialogs, []);
  });

  await t.step("stopping a plugin turns its row to stopped without a reload", async () => {
    await page.evaluate(
      () => ((globalThis as unknown as { notReloaded: boolean }).notReloaded = true),
    );
    await env.host.supervisor("dog")!.stop();
    await stateOf(page, "dog").filter({ hasText: /^stopped$/ }).waitFor({ timeout: 2000 });
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded),
      true,
    );
    assert.equal(await stateOf(page, "cat").textContent(), "ready");
  });

  await t.step("a reload shows up as it happens", async () => {
    const main = join(home.pluginsDir, "cat", "main.ts");
    await Deno.writeTextFile(main, (await Deno.readTextFile(main)) + "\n// changed\n");
    await page.locator('#changes li[data-outcome="reloaded"]').filter({ hasText: "cat" })
      .waitFor({ timeout: 15_000 });
    await stateOf(page, "cat").filter({ hasText: "ready" }).waitFor({ timeout: 5000 });
  });

  await t.step("a screenshot of the page is saved and non-empty", async () => {
    const dir = await Deno.makeTempDir({ prefix: "plugsconc-dashboard-" });
    const file = join(dir, "dashboard.png");
    await page.screenshot({ path: file, fullPage: true });
    const { size } = await Deno.stat(file);
    assert.ok(size > 1000, `screenshot ${file} has ${size} bytes`);
    console.log(JSON.stringify({ screenshot: file, bytes: size }));
  });
});

Deno.test("with a token the dashboard asks for it first and shows no data without it", async (t) => {
  await using home = await dashboardHome();
  await using env = await startAll(home, TOKEN);
  const base = env.gateway.url;

  await t.step("the page's files load without the token, the data does not", async () => {
    const page = await fetch(base + "/");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy")!, /script-src 'self'/);
    const html = await page.text();
    assert.ok(!html.includes("cat"), "the page itself holds no plugin data");
    const events = await fetch(base + "/dashboard/events");
    assert.equal(events.status, 401);
    await events.body?.cancel();
    const uplot = await fetch(base + "/dashboard/uplot.js");
    assert.equal(uplot.status, 200);
    assert.ok((await uplot.text()).includes("uPlot"));
  });

  await t.step("the event stream answers with a snapshot once the token is sent", async () => {
    const controller = new AbortController();
    const r = await fetch(base + "/dashboard/events", {
      headers: { authorization: `Bearer ${TOKEN}` },
      signal: controller.signal,
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type")!, /^text\/event-stream/);
    const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n\n")) text += (await reader.read()).value ?? "";
    assert.match(text, /^event: snapshot\ndata: \{"plugins":\[/);
    controller.abort();
    await reader.cancel().catch(() => {});
  });

  await t.step(
    `at most ${MAX_EVENT_STREAMS} event streams are open at once; the next is 503`,
    async () => {
      const controller = new AbortController();
      const open = async () => {
        const r = await fetch(base + "/dashboard/events", {
          headers: { authorization: `Bearer ${TOKEN}` },
          signal: controller.signal,
        });
        return r;
      };
      const streams = [];
      for (let i = 0; i < MAX_EVENT_STREAMS; i++) streams.push(await open());
      assert.deepEqual(new Set(streams.map((r) => r.status)), new Set([200]));
      const over = await open();
      assert.equal(over.status, 503);
      assert.equal((await over.json()).error.code, "TOO_MANY_STREAMS");
      controller.abort();
      await Promise.all(streams.map((r) => r.body?.cancel().catch(() => {})));
    },
  );

  await using browser = await launchChromium();
  const page = await browser.newPage();

  await t.step("without the token the page asks for it and shows no data", async () => {
    await page.goto(base + "/");
    await page.locator("#login").waitFor({ state: "visible", timeout: 5000 });
    assert.equal(await page.locator("#app").isVisible(), false);
    assert.equal(await page.locator("#plugins tbody tr").count(), 0);
    assert.ok(!(await page.locator("body").innerText()).includes("ready"));
  });

  await t.step("a wrong token is refused and the right one opens the page", async () => {
    await page.fill("#token", "not-the-token-at-all");
    await page.click("#login button[type=submit]");
    await page.locator("#login-error").filter({ hasText: "refused" }).waitFor({ timeout: 5000 });
    await page.fill("#token", TOKEN);
    await page.click("#login button[type=submit]");
    await stateOf(page, "cat").filter({ hasText: "ready" }).waitFor({ timeout: 5000 });
    assert.ok(!(await page.content()).includes(TOKEN), "the token is never in the page");
    await page.reload();
    await stateOf(page, "cat").filter({ hasText: "ready" }).waitFor({ timeout: 5000 });
  });
});
