import { PlugsconcError } from "../errors/mod.ts";

/**
 * The stable codes of {@linkcode IntegrityError}.
 *
 * - `CHECKSUM_MISMATCH`: the plugin folder's digest differs from `<entrypoint>.sha256` or the
 *   manifest's `security.checksum` (or, for a running plugin, from what it was verified with).
 * - `CHECKSUM_MISSING`: checksums are required (`security.require_checksums`) and the plugin
 *   has neither.
 * - `CHECKSUM_FORMAT`: the `.sha256` file is not one line `<64 hex digits>  <entrypoint name>`.
 * - `CHECKSUM_READ`: a file or folder of the plugin folder could not be read.
 * - `CHECKSUM_FILE_TYPE`: the plugin folder holds an entry that is neither a regular file, a
 *   symlink nor a folder (a FIFO, socket or device), which a checksum cannot cover.
 * - `CHECKSUM_TOO_MANY_FILES`: the plugin folder holds more entries than a checksum walks.
 * - `CHECKSUM_UNVERIFIED`: a plugin could not be verified at all (invalid manifest, module
 *   graph refused, unreadable file); `plugins verify` uses it for its exit status.
 */
export type IntegrityErrorCode =
  | "CHECKSUM_MISMATCH"
  | "CHECKSUM_MISSING"
  | "CHECKSUM_FORMAT"
  | "CHECKSUM_READ"
  | "CHECKSUM_FILE_TYPE"
  | "CHECKSUM_TOO_MANY_FILES"
  | "CHECKSUM_UNVERIFIED";

/**
 * A plugin's code does not match its checksum, has none when one is required, or its
 * checksum file is malformed.
 *
 * @example
 * ```ts
 * try {
 *   assertVerified(await verifyPlugin(pool, plugin), { required: true });
 * } catch (e) {
 *   if (e instanceof IntegrityError && e.code === "CHECKSUM_MISMATCH") refuse(e.plugin);
 * }
 * ```
 */
export class IntegrityError extends PlugsconcError {
  /** Narrowed to the integrity codes. */
  declare readonly code: IntegrityErrorCode;
  /** The plugin concerned. */
  readonly plugin: string | undefined;

  /**
   * @param code one of {@linkcode IntegrityErrorCode}
   * @param message what failed, where, and what to do
   * @param options the plugin, `cause` and `details`
   */
  constructor(
    code: IntegrityErrorCode,
    message: string,
    options: { plugin?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, {
      cause: options.cause,
      details: {
        ...(options.plugin === undefined ? {} : { plugin: options.plugin }),
        ...options.details,
      },
    });
    this.plugin = options.plugin;
  }
}
