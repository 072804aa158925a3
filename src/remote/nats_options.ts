import { isAbsolute, resolve } from "node:path";
import { type ConnectionOptions, credsAuthenticator } from "@nats-io/transport-node";
import type { Config } from "../config/mod.ts";
import { RemoteConfigError } from "./remote_error.ts";

/** `remote.nats` after validation. */
export type NatsConfig = Config["remote"]["nats"];

/** The host names of `servers` (`nats://h:p`, `tls://h:p`, `h:p` or `h`). */
export function serverHosts(servers: readonly string[]): string[] {
  return servers.map((s) => {
    const url = new URL(/^[a-z]+:\/\//i.test(s) ? s : `nats://${s}`);
    return url.hostname.replace(/^\[|\]$/g, "");
  });
}

/** Whether `host` is a loopback name or address. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Whether the config gives the connection credentials of any kind. */
export function hasAuth(nats: NatsConfig): boolean {
  return nats.token !== undefined ||
    (nats.user !== undefined && nats.pass !== undefined) ||
    nats.credentials !== undefined ||
    (nats.tls?.cert_file !== undefined && nats.tls.key_file !== undefined);
}

/**
 * Refuses, before any connection, a worker that would expose plugins on a non-loopback NATS
 * server without credentials (unless `remote.nats.allow_unauthenticated`): anyone on that
 * network could call its plugins, or answer in its place.
 *
 * @throws {RemoteError} `REMOTE_CONFIG` without servers, `REMOTE_INSECURE` as above
 */
export function checkWorkerSecurity(nats: NatsConfig): void {
  if (nats.servers.length === 0) {
    throw new RemoteConfigError(
      "REMOTE_CONFIG",
      "no NATS server to serve on: give --nats <url> or remote.nats.servers in the config",
    );
  }
  const open = serverHosts(nats.servers).filter((h) => !isLoopback(h));
  if (open.length > 0 && !hasAuth(nats) && !nats.allow_unauthenticated) {
    throw new RemoteConfigError(
      "REMOTE_INSECURE",
      `refusing to expose plugins on NATS server ${open.join(", ")} without authentication: ` +
        "anyone who reaches it could call them or answer as this worker; set " +
        "remote.nats.token, user/pass, credentials or a TLS client certificate (or, on a " +
        "network you trust entirely, remote.nats.allow_unauthenticated: true)",
      { details: { servers: nats.servers } },
    );
  }
}

/**
 * Refuses a connection the server accepted without asking for credentials when it is not on
 * loopback: credentials the server ignores protect nothing.
 */
export function checkServerRequiresAuth(
  nats: NatsConfig,
  server: { readonly host: string; readonly authRequired: boolean },
): void {
  if (isLoopback(server.host) || server.authRequired || nats.allow_unauthenticated) return;
  throw new RemoteConfigError(
    "REMOTE_INSECURE",
    `NATS server ${server.host} accepted this worker without authentication (it does not ` +
      "require any): refusing to expose plugins there; turn on authorization in the " +
      "nats-server config, or set remote.nats.allow_unauthenticated: true",
  );
}

/** Connection options of `remote.nats`; file paths resolve against `baseDir`. */
export function natsConnectOptions(
  nats: NatsConfig,
  options: { baseDir: string; name: string },
): ConnectionOptions {
  const path = (p: string) => isAbsolute(p) ? p : resolve(options.baseDir, p);
  const o: ConnectionOptions = {
    servers: [...nats.servers],
    name: options.name,
    // Keep trying while a server restarts: calls fail fast meanwhile (state != ready).
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  };
  if (nats.token !== undefined) o.token = nats.token;
  if (nats.user !== undefined) o.user = nats.user;
  if (nats.pass !== undefined) o.pass = nats.pass;
  if (nats.credentials !== undefined) {
    const file = path(nats.credentials);
    let creds: Uint8Array;
    try {
      creds = Deno.readFileSync(file);
    } catch (cause) {
      throw new RemoteConfigError(
        "REMOTE_CONFIG",
        `cannot read remote.nats.credentials ${file}: ${(cause as Error).message}`,
        { cause },
      );
    }
    o.authenticator = credsAuthenticator(creds);
  }
  const tls = nats.tls;
  if (tls !== undefined) {
    o.tls = {
      ...(tls.ca_file ? { caFile: path(tls.ca_file) } : {}),
      ...(tls.cert_file ? { certFile: path(tls.cert_file) } : {}),
      ...(tls.key_file ? { keyFile: path(tls.key_file) } : {}),
    };
  }
  return o;
}
