// Embedded as text modules so that `deno compile` carries them: no build step, no CDN.
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };
import uplotJs from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import appCss from "./app.css" with { type: "text" };
import appJs from "./app.js" with { type: "text" };
import pageHtml from "./page.html" with { type: "text" };

/** One file of the page. */
export interface Asset {
  readonly type: string;
  readonly body: string;
  /** A strong validator, so a reload costs a 304. */
  readonly etag: string;
}

function asset(type: string, body: string): Asset {
  // FNV-1a: a cheap, stable fingerprint of the embedded text (not a security measure).
  let h = 0x811c9dc5;
  for (let i = 0; i < body.length; i++) h = Math.imul(h ^ body.charCodeAt(i), 0x01000193);
  return { type, body, etag: `"${(h >>> 0).toString(16)}-${body.length}"` };
}

/** The dashboard's files by path. */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/", asset("text/html; charset=utf-8", pageHtml)],
  ["/dashboard/app.js", asset("text/javascript; charset=utf-8", appJs)],
  ["/dashboard/app.css", asset("text/css; charset=utf-8", appCss)],
  ["/dashboard/uplot.js", asset("text/javascript; charset=utf-8", uplotJs)],
  ["/dashboard/uplot.css", asset("text/css; charset=utf-8", uplotCss)],
]);

/**
 * No inline script or style, no other origin: even a string that escaped the page's
 * textContent rule could not run. `connect-src 'self'` covers the event stream and calls.
 */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
  "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Gzipped bodies, made once on first request (uPlot goes from 51 kB to about 22 kB). */
const gzipped = new Map<string, Promise<Uint8Array<ArrayBuffer>>>();

function gzipOf(path: string, body: string): Promise<Uint8Array<ArrayBuffer>> {
  let bytes = gzipped.get(path);
  if (bytes === undefined) {
    const stream = new Blob([body]).stream().pipeThrough(new CompressionStream("gzip"));
    bytes = new Response(stream).bytes();
    gzipped.set(path, bytes);
  }
  return bytes;
}

/**
 * The response for a dashboard file (`undefined` for a path that is none), gzipped when the
 * client accepts it.
 */
export async function assetResponse(
  path: string,
  request: Request,
  requestId: string,
): Promise<Response | undefined> {
  const a = ASSETS.get(path);
  if (a === undefined) return undefined;
  const gzip = /\bgzip\b/.test(request.headers.get("accept-encoding") ?? "");
  const etag = gzip ? a.etag.replace(/"$/, '-gz"') : a.etag;
  const headers: Record<string, string> = {
    "content-type": a.type,
    "cache-control": "no-cache",
    etag,
    vary: "accept-encoding",
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-request-id": requestId,
  };
  if (request.headers.get("if-none-match") === etag) {
    return new Response(null, { status: 304, headers });
  }
  if (!gzip) return new Response(a.body, { headers });
  headers["content-encoding"] = "gzip";
  return new Response(await gzipOf(path, a.body), { headers });
}
