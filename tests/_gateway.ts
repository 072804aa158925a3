/**
 * Helpers of the gateway tests (`server_test.ts`, `server_metrics_test.ts`): a home with
 * `behave` and two copies with their own policies, and small HTTP clients.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { PluginHost } from "../src/host/mod.ts";
import { FIXTURE_PLUGINS, makeHome } from "./_helpers.ts";

export const BEHAVE = join(FIXTURE_PLUGINS, "behave");
export const TOKEN = "test-token-0123456789abcdef";
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Record<string, unknown>;
}

/** POSTs `body` (JSON unless a string) to `base` + `path` and reads the JSON answer. */
export async function post(
  base: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(base + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

export async function get(base: string, path: string, headers: Record<string, string> = {}) {
  const response = await fetch(base + path, { headers });
  const text = await response.text();
  const json = response.headers.get("content-type")?.startsWith("application/json");
  return {
    status: response.status,
    headers: response.headers,
    text,
    body: json ? JSON.parse(text) : undefined,
  };
}

/**
 * Sends `head` as is on a new loopback connection and reads the answer (until its JSON body
 * is complete or the server closes): for requests `fetch` will not send.
 */
export async function rawHttp(port: number, head: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head));
    let text = "";
    const buf = new Uint8Array(4096);
    while (!/\r\n\r\n[\s\S]*\}\}/.test(text)) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}

export function errorOf(a: Answer): { code: string; message: string } {
  assert.ok(a.body.error !== undefined, `no error in ${JSON.stringify(a.body)}`);
  return a.body.error as { code: string; message: string };
}

export function assertError(a: Answer, status: number, code: string): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  assert.equal(errorOf(a).code, code);
  assert.ok(errorOf(a).message.length > 0);
  assert.match(a.headers.get("x-request-id") ?? "", UUID);
}

/** The home of most tests: behave, plus `limited` (rate limited) and `fragile` (breaker at 1). */
export async function gatewayHome() {
  const home = await makeHome({
    watcher: { enabled: false },
    defaults: { restart: { initial_backoff_ms: 20 } },
    server: { max_body_bytes: 1024 },
    plugins: {
      // Longer than any wait below: a cancellation the plugin sees is the gateway's doing.
      behave: { circuit_breaker: { enabled: false }, timeout_ms: 300_000 },
      limited: { rate_limit: { rps: 0.1, burst: 1 } },
      fragile: {
        retry: { max_attempts: 1 },
        circuit_breaker: { failure_threshold: 1, recovery_ms: 600_000 },
      },
    },
  });
  await home.addPlugin(BEHAVE);
  await home.addPlugin(BEHAVE, { as: "limited" });
  await home.addPlugin(BEHAVE, { as: "fragile" });
  return home;
}

export async function cancelledCount(host: PluginHost): Promise<number> {
  return (await host.call("behave", "cancelled") as unknown[]).length;
}
