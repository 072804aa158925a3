/** The longest `X-Request-Id` taken from a client; longer ones are replaced. */
export const MAX_REQUEST_ID_LENGTH = 128;

const SANE = /^[A-Za-z0-9._:+=\/-]{1,128}$/;

/**
 * The request id of a request: the client's `X-Request-Id` when it is 1 to 128 characters of
 * `A-Z a-z 0-9 . _ : + = / -` (enough for UUIDs, ULIDs, base64 and trace ids, nothing that
 * could break a log line or a header), else a new random UUID.
 *
 * @example
 * ```ts
 * requestIdOf("abc-123"); // "abc-123"
 * requestIdOf("bad id\n"); // e.g. "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
 * ```
 */
export function requestIdOf(header: string | null): string {
  return header !== null && SANE.test(header) ? header : crypto.randomUUID();
}
