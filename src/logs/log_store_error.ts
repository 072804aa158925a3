/**
 * The log store's errors: {@link LogStoreError} with its codes, and {@link storeError}, which
 * turns what SQLite or the file system threw into one of them with a message that says what
 * to do.
 *
 * @module
 */
import { PlugsconcError } from "../errors/mod.ts";

/** Error codes of {@link LogStoreError}. */
export type LogStoreErrorCode =
  | "LOG_STORE_UNWRITABLE"
  | "LOG_STORE_LOCKED"
  | "LOG_STORE_FULL"
  | "LOG_STORE_IO"
  | "LOG_STORE_CORRUPT"
  | "LOG_STORE_MISSING"
  | "LOG_STORE_SCHEMA"
  | "LOG_STORE_CLOSED"
  | "LOG_STORE_FLUSH_TIMEOUT"
  | "LOG_STORE_FAILED";

const RETRYABLE: ReadonlySet<string> = new Set([
  "LOG_STORE_UNWRITABLE",
  "LOG_STORE_LOCKED",
  "LOG_STORE_FULL",
  "LOG_STORE_IO",
]);

/** A failure of the SQLite log store; `details.path` names the database file. */
export class LogStoreError extends PlugsconcError {
  declare readonly code: LogStoreErrorCode;

  /**
   * @param code one of {@link LogStoreErrorCode}
   * @param message what failed, where, and what to do
   * @param options `path`, `cause`, more details
   */
  constructor(
    code: LogStoreErrorCode,
    message: string,
    options: { path?: string; cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, {
      cause: options.cause,
      details: {
        ...(options.path === undefined ? {} : { path: options.path }),
        ...options.details,
      },
    });
  }

  /** Whether the condition can clear by itself (a lock, a full disk, permissions, I/O). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

/** SQLite primary result codes we tell apart. */
const SQLITE = {
  BUSY: 5,
  LOCKED: 6,
  READONLY: 8,
  IOERR: 10,
  CORRUPT: 11,
  FULL: 13,
  CANTOPEN: 14,
  NOTADB: 26,
};

/** Maps a thrown value to a {@link LogStoreError} with a message that says what to do. */
export function storeError(error: unknown, path: string, action: string): LogStoreError {
  if (error instanceof LogStoreError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const errcode = (error as { errcode?: unknown })?.errcode;
  const primary = typeof errcode === "number" ? errcode & 0xff : classify(error, message);
  const details = { action, sqlite: message, ...(typeof errcode === "number" ? { errcode } : {}) };
  const opts = { path, cause: error, details };
  switch (primary) {
    case SQLITE.BUSY:
    case SQLITE.LOCKED:
      return new LogStoreError(
        "LOG_STORE_LOCKED",
        `the log database ${path} is locked by another connection (${message}); a process ` +
          "holding a write transaction on it must commit or exit. Writes are retried.",
        opts,
      );
    case SQLITE.FULL:
      return new LogStoreError(
        "LOG_STORE_FULL",
        `the log database ${path} cannot grow: the disk is full (${message}). Free space, or ` +
          "lower logging.store.retention_days / max_rows; writes resume when there is room.",
        opts,
      );
    case SQLITE.READONLY:
    case SQLITE.CANTOPEN:
      return new LogStoreError(
        "LOG_STORE_UNWRITABLE",
        `cannot ${action} the log database ${path}: ${message}. Make the file and its folder ` +
          "writable, set logging.store.db_file to a writable path, or set " +
          "logging.store.enabled: false.",
        opts,
      );
    case SQLITE.CORRUPT:
    case SQLITE.NOTADB:
      return new LogStoreError(
        "LOG_STORE_CORRUPT",
        `${path} is not a usable log database (${message}); move it aside and the host ` +
          "creates a new one, or set logging.store.db_file to another file.",
        opts,
      );
    case SQLITE.IOERR:
      return new LogStoreError(
        "LOG_STORE_IO",
        `disk I/O error on the log database ${path} (${message}); check the disk. Writes are retried.`,
        opts,
      );
  }
  return new LogStoreError(
    "LOG_STORE_FAILED",
    `cannot ${action} the log database ${path}: ${message}`,
    opts,
  );
}

function classify(error: unknown, message: string): number {
  if (error instanceof Deno.errors.PermissionDenied || error instanceof Deno.errors.NotADirectory) {
    return SQLITE.CANTOPEN;
  }
  if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.AlreadyExists) {
    return SQLITE.CANTOPEN;
  }
  if (/read-only file system|EROFS|readonly/i.test(message)) return SQLITE.READONLY;
  if (/no space|ENOSPC|disk is full|quota/i.test(message)) return SQLITE.FULL;
  if (/database (table )?is locked|database is busy/i.test(message)) return SQLITE.BUSY;
  if (/unable to open|permission denied|EACCES|not a directory/i.test(message)) {
    return SQLITE.CANTOPEN;
  }
  if (/not a database|malformed/i.test(message)) return SQLITE.CORRUPT;
  if (/disk I\/O error/i.test(message)) return SQLITE.IOERR;
  return -1;
}
