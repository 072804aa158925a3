import { PlugsconcError } from "../errors/mod.ts";

/**
 * The stable codes of {@linkcode ServerError}.
 *
 * - `SERVER_INSECURE`: `server.listen` is not a loopback address and `server.token` is unset.
 * - `SERVER_ADDR_IN_USE`: another process already listens on `server.listen`.
 * - `SERVER_LISTEN`: the address cannot be bound for another reason (permission, no such
 *   interface, bad address).
 * - `SERVER_TLS`: a `server.tls` file is missing, unreadable, or not a PEM certificate or key
 *   (or the two do not match).
 */
export type ServerErrorCode =
  | "SERVER_INSECURE"
  | "SERVER_ADDR_IN_USE"
  | "SERVER_LISTEN"
  | "SERVER_TLS";

/**
 * The HTTP gateway cannot start. The message names `server.listen` (or the
 * `server.tls` file) and says what to change.
 *
 * @example
 * ```ts
 * try {
 *   await Gateway.start(host, host.config.server);
 * } catch (e) {
 *   if (e instanceof ServerError && e.code === "SERVER_ADDR_IN_USE") console.error(e.message);
 * }
 * ```
 */
export class ServerError extends PlugsconcError {
  /** The `server.listen` address involved. */
  readonly listen: string;

  /**
   * @param code one of {@link ServerErrorCode}
   * @param message what failed, for which address, and what to do
   * @param options the address, and the cause
   */
  constructor(
    code: ServerErrorCode,
    message: string,
    options: { listen: string; cause?: unknown },
  ) {
    super(code, message, { cause: options.cause, details: { listen: options.listen } });
    this.listen = options.listen;
  }
}
