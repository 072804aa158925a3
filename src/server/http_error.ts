import { PlugsconcError } from "../errors/mod.ts";

/**
 * The stable codes of {@linkcode HttpError}, each with the status it is sent with:
 *
 * - `BAD_JSON` (400): the body is not UTF-8 JSON.
 * - `PARAMS_INVALID` (400): the body is JSON but not an object or array (a method's params).
 * - `TOKEN_MISSING` / `TOKEN_INVALID` (401): no `Authorization: Bearer`, or the wrong token.
 * - `HOST_NOT_ALLOWED` (403): without a token, a `Host` header that is not a loopback name
 *   (a DNS-rebinding page in a browser).
 * - `NOT_FOUND` (404): no such route.
 * - `METHOD_NOT_ALLOWED` (405): the route exists with another HTTP method (`Allow` says which).
 * - `REQUEST_TIMEOUT` (408): the body did not arrive within `server.request_timeout_ms`.
 * - `BODY_TOO_LARGE` (413): the body is over `server.max_body_bytes`.
 * - `UNSUPPORTED_MEDIA_TYPE` (415): a call whose `Content-Type` is not `application/json`.
 * - `CLIENT_CLOSED_REQUEST` (499): the client went away before the answer (never received;
 *   it keeps cancelled calls apart in logs and metrics).
 * - `SERVER_CLOSING` (503): the gateway is shutting down.
 * - `INTERNAL` (500): a bug; the message gives the request id to find it in the logs.
 */
export type HttpErrorCode =
  | "BAD_JSON"
  | "PARAMS_INVALID"
  | "TOKEN_MISSING"
  | "TOKEN_INVALID"
  | "HOST_NOT_ALLOWED"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "REQUEST_TIMEOUT"
  | "BODY_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "CLIENT_CLOSED_REQUEST"
  | "SERVER_CLOSING"
  | "INTERNAL";

/**
 * An error the gateway answers itself (before or instead of a plugin call), with its HTTP
 * status and any headers the status needs (`WWW-Authenticate`, `Allow`).
 *
 * @example
 * ```ts
 * throw new HttpError(413, "BODY_TOO_LARGE", "the body is over 1048576 bytes");
 * ```
 */
export class HttpError extends PlugsconcError {
  /** The HTTP status to answer with. */
  readonly status: number;
  /** Extra response headers. */
  readonly headers: Readonly<Record<string, string>>;

  /**
   * @param status HTTP status
   * @param code stable code
   * @param message what is wrong with the request and how to fix it
   * @param headers extra response headers
   */
  constructor(
    status: number,
    code: HttpErrorCode,
    message: string,
    headers: Record<string, string> = {},
  ) {
    super(code, message, { details: { status } });
    this.status = status;
    this.headers = headers;
  }
}
