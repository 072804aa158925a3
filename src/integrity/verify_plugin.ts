import type { PluginDescriptor } from "../manifest/mod.ts";
import type { WorkerPool } from "../pool/mod.ts";
import { readChecksumFile } from "./checksum_file.ts";
import { type ChecksumOptions, digestPlugin, type FileDigest } from "./checksum_plugin.ts";
import { IntegrityError } from "./integrity_error.ts";

/** `ok`: every checksum present matches; `mismatch`: one does not; `unsigned`: there is none. */
export type VerifyStatus = "ok" | "mismatch" | "unsigned";

/** A checksum a plugin declares. */
export interface ExpectedChecksum {
  /** `file`: `<entrypoint>.sha256`; `manifest`: `security.checksum` in manifest.yaml. */
  readonly source: "file" | "manifest";
  /** The file it was read from. */
  readonly where: string;
  /** Lower-case hex. */
  readonly hex: string;
  /** Whether it equals the actual checksum. */
  readonly matches: boolean;
}

/** What {@linkcode verifyPlugin} found. */
export interface VerifyResult {
  readonly plugin: string;
  readonly status: VerifyStatus;
  /** The plugin folder's checksum now. */
  readonly actual: string;
  /** The declared checksums: the `.sha256` file first, then the manifest's. */
  readonly expected: readonly ExpectedChecksum[];
  /** The entries hashed (files and symlinks), sorted by path. */
  readonly files: readonly FileDigest[];
}

/**
 * Checks a plugin folder ({@linkcode digestPlugin}: every file and symlink in it but the
 * checksum file, the manifest with its declared `security.checksum` value zeroed) against its
 * `<entrypoint>.sha256` file and its manifest's
 * `security.checksum`: each one present must match (`ok`), any that differs is a `mismatch`,
 * and with neither the plugin is `unsigned`. Hashing runs as pool jobs; verify several
 * plugins at once (`Promise.all`) and their files are hashed in parallel. `plugins verify`
 * and the host's check before every spawn both call this.
 *
 * @example
 * ```ts
 * await using pool = new WorkerPool();
 * const result = await verifyPlugin(pool, plugin);
 * assertVerified(result, { required: config.security.require_checksums });
 * ```
 *
 * @throws {IntegrityError} `CHECKSUM_FORMAT` for a malformed `.sha256` file, `CHECKSUM_READ`,
 *   `CHECKSUM_FILE_TYPE` or `CHECKSUM_TOO_MANY_FILES` when the folder cannot be hashed
 */
export async function verifyPlugin(
  pool: WorkerPool,
  plugin: PluginDescriptor,
  options: ChecksumOptions = {},
): Promise<VerifyResult> {
  const file = await readChecksumFile(plugin);
  const digest = await digestPlugin(pool, plugin, options);
  const expected: ExpectedChecksum[] = [];
  if (file !== undefined) {
    expected.push({
      source: "file",
      where: file.path,
      hex: file.hex,
      matches: file.hex === digest.hex,
    });
  }
  const declared = plugin.manifest.security.checksum;
  if (declared !== undefined) {
    const hex = declared.slice("sha256:".length).toLowerCase();
    expected.push({
      source: "manifest",
      where: plugin.manifestFile,
      hex,
      matches: hex === digest.hex,
    });
  }
  const status: VerifyStatus = expected.length === 0
    ? "unsigned"
    : expected.every((e) => e.matches)
    ? "ok"
    : "mismatch";
  return { plugin: plugin.name, status, actual: digest.hex, expected, files: digest.files };
}

/**
 * Throws unless a verification passed: a `mismatch` always, an `unsigned` plugin when
 * checksums are `required` (the config's `security.require_checksums`).
 *
 * @throws {IntegrityError} `CHECKSUM_MISMATCH` naming each differing source, or
 *   `CHECKSUM_MISSING`
 */
export function assertVerified(result: VerifyResult, options: { required?: boolean } = {}): void {
  if (result.status === "mismatch") {
    const bad = result.expected.filter((e) => !e.matches);
    throw new IntegrityError(
      "CHECKSUM_MISMATCH",
      `plugin ${result.plugin}: its code does not match its checksum: ` +
        bad.map((e) =>
          `${e.source === "file" ? e.where : `security.checksum in ${e.where}`} expects ${e.hex}`
        ).join("; ") +
        `, its folder hashes to ${result.actual}. If the change is intended, run ` +
        `\`plugsconc plugins checksum ${result.plugin}\`` +
        (bad.some((e) => e.source === "manifest")
          ? ` and set security.checksum to sha256:${result.actual}`
          : ""),
      {
        plugin: result.plugin,
        details: { actual: result.actual, expected: bad.map((e) => ({ ...e })) },
      },
    );
  }
  if (result.status === "unsigned" && options.required) {
    throw new IntegrityError(
      "CHECKSUM_MISSING",
      `plugin ${result.plugin} has no checksum and security.require_checksums is on: run ` +
        `\`plugsconc plugins checksum ${result.plugin}\` to write one`,
      { plugin: result.plugin, details: { actual: result.actual } },
    );
  }
}
