import { type ListenAddress, parseListenAddress } from "./listen_address.ts";
import { ServerError } from "./server_error.ts";

/**
 * Checks `server.listen` and `server.token` as `Gateway.start` does, without listening:
 * `run` calls it before starting any plugin.
 *
 * @example
 * ```ts
 * checkListen("127.0.0.1:8787", undefined); // { hostname: "127.0.0.1", port: 8787, loopback: true }
 * ```
 * @throws {ServerError} `SERVER_LISTEN` for an address that is not host:port,
 *   `SERVER_INSECURE` for a non-loopback one without a token
 */
export function checkListen(listen: string, token: string | undefined): ListenAddress {
  let addr: ListenAddress;
  try {
    addr = parseListenAddress(listen);
  } catch (e) {
    throw new ServerError(
      "SERVER_LISTEN",
      `server.listen ${JSON.stringify(listen)} is not host:port (e.g. 127.0.0.1:8787)`,
      { listen, cause: e },
    );
  }
  if (!addr.loopback && token === undefined) {
    throw new ServerError(
      "SERVER_INSECURE",
      `refusing to serve plugin calls on ${listen} without a token: anyone who can reach ` +
        "that address could call every plugin. Set server.token (16+ characters, e.g. " +
        "token: ${PLUGSCONC_TOKEN}) or listen on a loopback address such as 127.0.0.1:8787",
      { listen },
    );
  }
  return addr;
}
