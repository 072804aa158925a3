import { PlugsconcError } from "../errors/mod.ts";

/**
 * The stable codes of {@linkcode ProcessServiceError}.
 *
 * - `PROCESS_NOT_ALLOWED`: the command, its arguments or the operation are not granted by the
 *   manifest's `capabilities.process`.
 * - `PROCESS_INVALID_PARAMS`: the request's params are malformed.
 * - `PROCESS_NOT_FOUND`: no child of this plugin has that pid (or it was already waited for).
 * - `PROCESS_LIMIT`: the plugin already has the most children it may have.
 * - `PROCESS_SPAWN_FAILED`: the operating system could not start the command.
 * - `PROCESS_TIMEOUT`: `exec` ran longer than its `timeout_ms` and was killed.
 * - `PROCESS_CANCELLED`: the plugin cancelled the request, or it stopped, and the child was
 *   killed.
 */
export type ProcessServiceErrorCode =
  | "PROCESS_NOT_ALLOWED"
  | "PROCESS_INVALID_PARAMS"
  | "PROCESS_NOT_FOUND"
  | "PROCESS_LIMIT"
  | "PROCESS_SPAWN_FAILED"
  | "PROCESS_TIMEOUT"
  | "PROCESS_CANCELLED";

/**
 * A `host/process.*` request the host refused or could not carry out. It reaches the plugin
 * as a JSON-RPC error whose `data.code` is the code (the SDK turns it back into an error with
 * that `code`).
 *
 * @example
 * ```ts
 * throw new ProcessServiceError("PROCESS_NOT_ALLOWED", "backup may not run /bin/sh", {
 *   details: { plugin: "backup", command: "/bin/sh" },
 * });
 * ```
 */
export class ProcessServiceError extends PlugsconcError {
  /** The stable code, narrowed to the process service's codes. */
  declare readonly code: ProcessServiceErrorCode;

  /**
   * @param code one of {@linkcode ProcessServiceErrorCode}
   * @param message what failed and what to do
   * @param options `cause` and `details` (plugin, command, pid, ...)
   */
  constructor(
    code: ProcessServiceErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
  }
}
