import { PlugsconcError } from "../errors/mod.ts";
import { PluginError } from "../runtime/mod.ts";

/** Codes of {@link RemoteError}. */
export type RemoteErrorCode =
  /** A worker or host would use an unauthenticated, non-loopback NATS connection. */
  | "REMOTE_INSECURE"
  /** `remote.nats` is missing or wrong (no servers, unreadable credentials, ...). */
  | "REMOTE_CONFIG"
  /** The NATS server could not be reached or refused the connection. */
  | "REMOTE_CONNECT";

/** A remote set-up error (worker or host): what failed and what to do. */
export class RemoteError extends PlugsconcError {
  /** @param code see {@link RemoteErrorCode} @param message what failed and what to do */
  constructor(
    code: RemoteErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
  }
}

/**
 * A remote set-up refused for the config's sake (`REMOTE_INSECURE`, `REMOTE_CONFIG`): the
 * user's input, like a `ConfigError` (the CLI exits with 2).
 */
export class RemoteConfigError extends RemoteError {}

/**
 * The worker that took a call went away before answering (its NATS connection dropped, or it
 * never confirmed the request): the call may or may not have run there, so the pipeline
 * retries it only when the method is idempotent (`REMOTE_WORKER_LOST`).
 */
export class RemoteWorkerLostError extends PluginError {
  /** The worker's id, when it had confirmed the call. */
  readonly worker: string | undefined;

  /** @param plugin name @param method called @param worker id, if known @param reason why */
  constructor(plugin: string, method: string, worker: string | undefined, reason: string) {
    super(
      "REMOTE_WORKER_LOST",
      `${plugin}.${method}: ${
        worker ? `worker ${worker}` : "the worker"
      } ${reason}; the call may have run there, so only idempotent methods are retried ` +
        "(mark the method idempotent in the manifest if running it twice is harmless)",
      { plugin, method, worker },
    );
    this.worker = worker;
  }
}
