import { connect, type NatsConnection } from "@nats-io/transport-node";
import {
  checkNatsSecurity,
  checkServerRequiresAuth,
  type NatsConfig,
  natsConnectOptions,
  type NatsRole,
  redactServers,
} from "./nats_options.ts";
import { RemoteError } from "./remote_error.ts";
import { guardStraySocketErrors } from "./_stray_socket_errors.ts";

/**
 * Connects a host or a worker to `nats.servers` with both security checks: a non-loopback
 * server without credentials is refused before any connection; one that accepted this client
 * without requiring authentication is refused (and the connection closed) after it.
 *
 * @throws {RemoteError} `REMOTE_INSECURE`, `REMOTE_CONFIG` (a bad url or unreadable
 *   credentials), `REMOTE_CONNECT` when no server answers (its urls redacted)
 */
export async function connectChecked(
  nats: NatsConfig,
  options: { readonly role: NatsRole; readonly baseDir: string; readonly name: string },
): Promise<NatsConnection> {
  checkNatsSecurity(nats, { role: options.role });
  // Outside the try: a bad url or unreadable credentials are REMOTE_CONFIG, not CONNECT.
  const connectOptions = natsConnectOptions(nats, { baseDir: options.baseDir, name: options.name });
  // The NATS client's socket can fail with no listener left (say, after the server refused
  // the credentials and closed it): that must not end the host.
  guardStraySocketErrors();
  let nc: NatsConnection;
  try {
    nc = await connect(connectOptions);
  } catch (cause) {
    throw new RemoteError(
      "REMOTE_CONNECT",
      `cannot connect to NATS ${redactServers(nats.servers).join(", ")}: ${
        (cause as Error).message
      }`,
      { cause },
    );
  }
  try {
    checkServerRequiresAuth(nats, {
      host: nc.getServer().replace(/:\d+$/, "").replace(/^\[|\]$/g, ""),
      authRequired: nc.info?.auth_required ?? false,
    }, { role: options.role });
  } catch (e) {
    await nc.close().catch(() => {});
    throw e;
  }
  return nc;
}
