import { getLogger } from "@logtape/logtape";

const log = getLogger(["plugsconc", "remote"]);

/** The errno codes of a socket the peer or the network ended. */
const SOCKET_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ETIMEDOUT", "ENOTCONN"]);

/**
 * Whether `error` is a Node socket's read or write error (`read ECONNRESET`): what a socket
 * emits when its peer goes, and what the NATS client's transport can leave without an `error`
 * listener (it removes its listeners between its connect phases and when it discards a
 * connection). Unheard, such an error would be an uncaught exception and end the host.
 */
export function isStraySocketError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, syscall } = error as Error & { code?: unknown; syscall?: unknown };
  return typeof code === "string" && SOCKET_CODES.has(code) &&
    (syscall === "read" || syscall === "write");
}

let installed = false;

/**
 * Keeps a socket error nothing listens for from ending the process: it is logged as a warning
 * and dropped (the connection it belonged to has failed or closed already; the NATS client
 * reports that itself). Installed once, for the process's life, by the first NATS connection:
 * such an error may come after the connection was given up.
 */
export function guardStraySocketErrors(): void {
  if (installed) return;
  installed = true;
  globalThis.addEventListener("error", (event) => {
    if (!isStraySocketError(event.error)) return;
    event.preventDefault();
    const error = event.error as Error & { code: string };
    log.warning("a socket failed after its connection ended ({code}); ignored: {message}", {
      code: error.code,
      message: error.message,
    });
  });
}
