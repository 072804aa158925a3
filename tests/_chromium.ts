/**
 * Debian's Chromium driven by `playwright-core`, for the dashboard tests and its benchmark:
 * launched with the flags this machine's closed network needs, and a counter of the bytes a
 * page's files take over the wire.
 *
 * @module
 */
import { type Browser, chromium, type Page } from "playwright-core";

/** The browser used: `CHROMIUM_PATH`, else Debian's `/usr/bin/chromium`. */
export const CHROMIUM: string = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/**
 * Starts headless Chromium; closed on dispose.
 *
 * @throws {Error} naming the path and how to install it when there is no Chromium there
 */
export async function launchChromium(): Promise<Browser & AsyncDisposable> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `no Chromium at ${CHROMIUM}: these tests need a real browser; install Debian's ` +
        "chromium (apt-get install chromium) or set CHROMIUM_PATH",
    );
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Without the background-networking flags Chromium keeps trying hosts it cannot reach.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() });
}

/**
 * Counts what `page` loads from here on: files and bytes over the wire (headers and body as
 * sent). The dashboard's event stream never ends, so it is left out.
 */
export function countPageBytes(page: Page): { readonly bytes: number; readonly files: number } {
  const count = { bytes: 0, files: 0 };
  page.on("requestfinished", async (r) => {
    if (r.url().endsWith("/dashboard/events")) return;
    const s = await r.sizes();
    count.bytes += s.responseBodySize + s.responseHeadersSize;
    count.files++;
  });
  return count;
}
