import { isAbsolute, resolve } from "node:path";
import { type ConnectionOptions, credsAuthenticator } from "@nats-io/transport-node";
import type { Config } from "../config/mod.ts";
import { RemoteConfigError } from "./remote_error.ts";

/** `remote.nats` after validation. */
export type NatsConfig = Config["remote"]["nats"];

/** Who connects: a worker exposes plugins, a host sends calls (and their params). */
export type NatsRole = "worker" | "host";

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
// Greedy up to the last '@' before the path: a password may hold an unencoded '@'.
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)?([^/?#]*)@/i;

/**
 * A server url with its password or token replaced by `***` (`nats://alice:***@host`), for
 * logs and error messages. Works on urls that do not parse too.
 */
export function redactUrl(server: string): string {
  return server.replace(USERINFO, (_m, scheme: string | undefined, info: string) => {
    const colon = info.indexOf(":");
    return `${scheme ?? ""}${colon >= 0 ? `${info.slice(0, colon)}:***` : "***"}@`;
  });
}

/** {@link redactUrl} of each server. */
export function redactServers(servers: readonly string[]): string[] {
  return servers.map(redactUrl);
}

function parseServer(server: string): URL {
  try {
    return new URL(SCHEME.test(server) ? server : `nats://${server}`);
  } catch {
    // The parser's own message repeats the url, password included: not kept as the cause.
    throw new RemoteConfigError(
      "REMOTE_CONFIG",
      `NATS server ${redactUrl(server)} is not a url: give nats://host:port (or tls://, or ` +
        "host:port) in --nats or remote.nats.servers",
    );
  }
}

/** The host names of `servers` (`nats://h:p`, `tls://h:p`, `h:p` or `h`). */
export function serverHosts(servers: readonly string[]): string[] {
  return servers.map((s) => parseServer(s).hostname.replace(/^\[|\]$/g, ""));
}

/**
 * The credentials in a server url: `user:pass@` or a token as the user part (`token@`), as
 * NATS urls give them; `undefined` when it has none (or does not parse).
 */
export function urlCredentials(
  server: string,
): { user: string; pass: string } | { token: string } | undefined {
  let url: URL;
  try {
    url = parseServer(server);
  } catch {
    return undefined;
  }
  const decode = (v: string) => {
    try {
      return decodeURIComponent(v);
    } catch {
      return v;
    }
  };
  const user = decode(url.username);
  const pass = decode(url.password);
  if (user !== "" && pass !== "") return { user, pass };
  if (user !== "") return { token: user };
  return undefined;
}

/** Whether `host` is a loopback name or address. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Whether the config gives the connection credentials of any kind, the servers' urls
 * included (`nats://user:pass@h`, `nats://token@h`: {@link natsConnectOptions} sends them).
 */
export function hasAuth(nats: NatsConfig): boolean {
  return nats.token !== undefined ||
    (nats.user !== undefined && nats.pass !== undefined) ||
    nats.credentials !== undefined ||
    (nats.tls?.cert_file !== undefined && nats.tls.key_file !== undefined) ||
    nats.servers.some((s) => urlCredentials(s) !== undefined);
}

const RISK: Record<NatsRole, { refuse: string; why: string }> = {
  worker: {
    refuse: "expose plugins on",
    why: "anyone who reaches it could call them or answer as this worker",
  },
  host: {
    refuse: "send remote plugin calls (and their params) to",
    why: "anyone who reaches it could read the calls or answer in a worker's place",
  },
};

/**
 * Refuses, before any connection, to use a non-loopback NATS server without credentials
 * (unless `remote.nats.allow_unauthenticated`): a worker would expose its plugins to anyone on
 * that network, a host would hand them every call's params.
 *
 * @throws {RemoteError} `REMOTE_CONFIG` without servers or with a server that is not a url,
 *   `REMOTE_INSECURE` as above
 */
export function checkNatsSecurity(nats: NatsConfig, options: { role: NatsRole }): void {
  if (nats.servers.length === 0) {
    throw new RemoteConfigError(
      "REMOTE_CONFIG",
      options.role === "worker"
        ? "no NATS server to serve on: give --nats <url> or remote.nats.servers in the config"
        : "a plugin has placement: remote but remote.nats.servers is empty; add the NATS url",
    );
  }
  const open = serverHosts(nats.servers).filter((h) => !isLoopback(h));
  if (open.length > 0 && !hasAuth(nats) && !nats.allow_unauthenticated) {
    const { refuse, why } = RISK[options.role];
    throw new RemoteConfigError(
      "REMOTE_INSECURE",
      `refusing to ${refuse} NATS server ${open.join(", ")} without authentication: ${why}; ` +
        "set remote.nats.token, user/pass, credentials or a TLS client certificate (or, on a " +
        "network you trust entirely, remote.nats.allow_unauthenticated: true)",
      { details: { servers: redactServers(nats.servers) } },
    );
  }
}

/** {@link checkNatsSecurity} for a worker (`plugsconc serve`). */
export function checkWorkerSecurity(nats: NatsConfig): void {
  checkNatsSecurity(nats, { role: "worker" });
}

/**
 * Refuses a connection the server accepted without asking for credentials when it is not on
 * loopback: credentials the server ignores protect nothing.
 */
export function checkServerRequiresAuth(
  nats: NatsConfig,
  server: { readonly host: string; readonly authRequired: boolean },
  options: { role?: NatsRole } = {},
): void {
  if (isLoopback(server.host) || server.authRequired || nats.allow_unauthenticated) return;
  const role = options.role ?? "worker";
  throw new RemoteConfigError(
    "REMOTE_INSECURE",
    `NATS server ${server.host} accepted this ${role} without authentication (it does not ` +
      `require any): refusing to ${RISK[role].refuse} it; turn on authorization in the ` +
      "nats-server config, or set remote.nats.allow_unauthenticated: true",
  );
}

/** The credentials of the servers' urls: one set (NATS sends one), not beside the config's. */
function urlAuth(nats: NatsConfig): { user: string; pass: string } | { token: string } | undefined {
  const found = nats.servers.map(urlCredentials).filter((c) => c !== undefined);
  if (found.length === 0) return undefined;
  const same = found.every((c) => JSON.stringify(c) === JSON.stringify(found[0]));
  if (!same || nats.token !== undefined || nats.user !== undefined || nats.pass !== undefined) {
    throw new RemoteConfigError(
      "REMOTE_CONFIG",
      `NATS servers ${redactServers(nats.servers).join(", ")}: credentials in the urls must be ` +
        "the same for every server and not given again as remote.nats.token/user/pass (one " +
        "connection sends one set); keep them in one place",
    );
  }
  return found[0];
}

/**
 * Connection options of `remote.nats`; file paths resolve against `baseDir`. Credentials in
 * the servers' urls become `user`/`pass` or `token` (the NATS client ignores them in a url).
 *
 * @throws {RemoteError} `REMOTE_CONFIG`: a bad url, conflicting credentials, unreadable files
 */
export function natsConnectOptions(
  nats: NatsConfig,
  options: { baseDir: string; name: string },
): ConnectionOptions {
  const path = (p: string) => isAbsolute(p) ? p : resolve(options.baseDir, p);
  serverHosts(nats.servers);
  const fromUrl = urlAuth(nats);
  const o: ConnectionOptions = {
    servers: nats.servers.map((s) => s.replace(USERINFO, "$1")),
    name: options.name,
    // Keep trying while a server restarts: calls fail fast meanwhile (state != ready).
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  };
  if (fromUrl !== undefined && "token" in fromUrl) o.token = fromUrl.token;
  if (fromUrl !== undefined && "user" in fromUrl) {
    o.user = fromUrl.user;
    o.pass = fromUrl.pass;
  }
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
