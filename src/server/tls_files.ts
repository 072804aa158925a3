import { ServerError } from "./server_error.ts";

/** The `server.tls` section: PEM files, absolute once the config is loaded. */
export interface TlsPaths {
  /** The certificate chain (PEM), leaf first. */
  readonly cert: string;
  /** Its private key (PEM). */
  readonly key: string;
}

/** The PEM text of {@link TlsPaths}, as `Deno.serve` and `Deno.createHttpClient` take it. */
export interface TlsFiles {
  readonly cert: string;
  readonly key: string;
}

/**
 * Reads `server.tls` as `Gateway.start` does: `run` calls it before starting any plugin, so a
 * bad file is refused before anything runs. Only the shape of the PEM is checked here;
 * `Deno.serve` parses it (and `Gateway.start` names the file when that fails).
 *
 * @example
 * ```ts
 * const { cert, key } = readTlsFiles({ cert: "/etc/plugsconc/cert.pem", key: "/etc/plugsconc/key.pem" }, "0.0.0.0:8443");
 * ```
 * @throws {ServerError} `SERVER_TLS` naming the file that is missing, unreadable, or not PEM
 */
export function readTlsFiles(tls: TlsPaths, listen: string): TlsFiles {
  const cert = readPem(tls.cert, "cert", /-----BEGIN CERTIFICATE-----/, listen);
  const key = readPem(tls.key, "key", /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/, listen);
  return { cert, key };
}

function readPem(path: string, field: "cert" | "key", begin: RegExp, listen: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied
      ? "permission denied"
      : e instanceof Error
      ? e.message
      : String(e);
    throw new ServerError(
      "SERVER_TLS",
      `cannot read server.tls.${field} ${path}: ${why}; check the path (relative paths are ` +
        "resolved against the config file's folder)",
      { listen, cause: e },
    );
  }
  if (!begin.test(text)) {
    const what = field === "cert" ? "a PEM certificate" : "a PEM private key";
    throw new ServerError(
      "SERVER_TLS",
      `server.tls.${field} ${path} is not ${what} (no "${
        field === "cert" ? "-----BEGIN CERTIFICATE-----" : "-----BEGIN PRIVATE KEY-----"
      }" line)`,
      { listen },
    );
  }
  return text;
}
