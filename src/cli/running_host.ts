import type { Config } from "../config/mod.ts";
import { parseListenAddress, type PluginView } from "../server/mod.ts";

/**
 * Asks a host that `run` started with this config for its plugins' live state, through its
 * HTTP gateway (`GET /v1/plugins`). `undefined` when the gateway is off or nothing answers
 * within `timeoutMs`: the host is not running (or not reachable), which is not an error here.
 *
 * With `server.tls` it asks over HTTPS and trusts the configured `server.tls.cert` besides the
 * system roots, so a self-signed certificate works (it must name the address asked: its
 * `subjectAltName` needs the `listen` IP, or 127.0.0.1 / ::1 for a wildcard `listen`).
 */
export async function runningPlugins(
  config: Config,
  timeoutMs = 1000,
): Promise<ReadonlyMap<string, PluginView> | undefined> {
  const server = config.server;
  if (!server.enabled) return undefined;
  let hostname: string;
  let port: number;
  try {
    ({ hostname, port } = parseListenAddress(server.listen));
  } catch {
    return undefined;
  }
  if (port === 0) return undefined;
  // A wildcard listen address is reached on loopback.
  if (hostname === "0.0.0.0") hostname = "127.0.0.1";
  if (hostname === "::") hostname = "::1";
  let client: Deno.HttpClient | undefined;
  if (server.tls !== undefined) {
    try {
      client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(server.tls.cert)] });
    } catch {
      return undefined;
    }
  }
  const scheme = client === undefined ? "http" : "https";
  const url = `${scheme}://${
    hostname.includes(":") ? `[${hostname}]` : hostname
  }:${port}/v1/plugins`;
  try {
    const res = await fetch(url, {
      headers: server.token ? { authorization: `Bearer ${server.token}` } : {},
      signal: AbortSignal.timeout(timeoutMs),
      client,
    });
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    const body = await res.json() as { plugins?: PluginView[] };
    return new Map((body.plugins ?? []).map((p) => [p.name, p]));
  } catch {
    return undefined;
  } finally {
    client?.close();
  }
}
