import { auditEvent } from "../audit/mod.ts";
import type { BearerAuth } from "./bearer_auth.ts";
import { HttpError } from "./http_error.ts";

/**
 * Lets a request through when the gateway has no token (`auth` undefined) or the request
 * carries it as `Authorization: Bearer`.
 *
 * @throws {HttpError} `TOKEN_MISSING` or `TOKEN_INVALID` (401, with `WWW-Authenticate`)
 */
export function authenticate(auth: BearerAuth | undefined, request: Request): void {
  if (auth === undefined) return;
  const result = auth.check(request.headers.get("authorization"));
  if (result === "ok") return;
  auditEvent({
    kind: "gateway.auth_failed",
    detail: { reason: result, method: request.method, path: new URL(request.url).pathname },
  });
  if (result === "missing") {
    throw new HttpError(
      401,
      "TOKEN_MISSING",
      "this gateway needs a bearer token: send Authorization: Bearer <server.token>",
      { "www-authenticate": 'Bearer realm="plugsconc"' },
    );
  }
  throw new HttpError(401, "TOKEN_INVALID", "the bearer token is not the gateway's token", {
    "www-authenticate": 'Bearer realm="plugsconc", error="invalid_token"',
  });
}
