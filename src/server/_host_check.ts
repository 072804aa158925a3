import { HttpError } from "./http_error.ts";
import { hostOfHeader, isLoopbackHost } from "./listen_address.ts";

/**
 * Without a token: refuses requests whose `Host` is not a loopback name, so a browser page on
 * another origin cannot reach the gateway through DNS rebinding. Remembers the answer for the
 * last 64 header values (a new one past that clears the memory).
 */
export class HostCheck {
  /** `Host` header values already checked, and whether they are loopback names. */
  readonly #seen = new Map<string, boolean>();

  /** @throws {HttpError} `HOST_NOT_ALLOWED` (403) */
  check(request: Request): void {
    const header = request.headers.get("host");
    if (header === null) return;
    let ok = this.#seen.get(header);
    if (ok === undefined) {
      const host = hostOfHeader(header);
      ok = host !== undefined && isLoopbackHost(host);
      if (this.#seen.size >= 64) this.#seen.clear();
      this.#seen.set(header, ok);
    }
    if (!ok) {
      throw new HttpError(
        403,
        "HOST_NOT_ALLOWED",
        `Host ${JSON.stringify(header)} is not a loopback name; without server.token the ` +
          "gateway only answers requests addressed to localhost or 127.0.0.1",
      );
    }
  }
}
