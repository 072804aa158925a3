import { createHash, timingSafeEqual } from "node:crypto";

/** The outcome of {@link BearerAuth.check}. */
export type AuthResult = "ok" | "missing" | "invalid";

/**
 * Checks `Authorization: Bearer <token>` against one configured token in constant time:
 * both sides are hashed with SHA-256 and the equal-length digests compared with
 * `timingSafeEqual`, so neither the token's length nor a matching prefix shows in the timing.
 *
 * @example
 * ```ts
 * const auth = new BearerAuth("0123456789abcdef");
 * auth.check(request.headers.get("authorization")); // "ok" | "missing" | "invalid"
 * ```
 */
export class BearerAuth {
  readonly #digest: Buffer;

  /**
   * @param token the secret (at least 16 characters, as the config schema requires)
   * @throws {RangeError} when the token is shorter than 16 characters
   */
  constructor(token: string) {
    if (token.length < 16) {
      throw new RangeError(`a bearer token needs at least 16 characters, got ${token.length}`);
    }
    this.#digest = sha256(token);
  }

  /** Checks the value of an `Authorization` header (`null` when the request had none). */
  check(header: string | null): AuthResult {
    if (header === null) return "missing";
    const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (m === null) return "missing";
    return timingSafeEqual(sha256(m[1]!), this.#digest) ? "ok" : "invalid";
  }
}

function sha256(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}
