/**
 * The base of every error plugsconc throws on purpose.
 *
 * Each error carries a stable string `code` (safe to match on; messages may change),
 * an optional `cause`, and structured `details` for logs and `--json` output.
 *
 * @example
 * ```ts
 * try {
 *   await loadConfig("config.yaml");
 * } catch (e) {
 *   if (e instanceof PlugsconcError && e.code === "CONFIG_INVALID") console.error(e.message);
 * }
 * ```
 */
export class PlugsconcError extends Error {
  /** A stable, machine-readable identifier, e.g. `CONFIG_INVALID`. */
  readonly code: string;
  /** Structured fields (file, plugin, method, ...), serialisable as JSON. */
  readonly details: Readonly<Record<string, unknown>>;

  /**
   * @param code stable identifier (`UPPER_SNAKE_CASE`)
   * @param message what failed, where, and what to do
   * @param options `cause` and `details`
   */
  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = Object.freeze({ ...options.details });
  }

  /** A JSON-safe view: name, code, message, details and the cause chain. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      details: this.details,
      ...(this.cause === undefined ? {} : { cause: errorToJSON(this.cause) }),
    };
  }
}

/** Turns any thrown value into a JSON-safe object, following `cause`. */
export function errorToJSON(error: unknown, depth = 0): unknown {
  if (error instanceof PlugsconcError) return error.toJSON();
  if (error instanceof Error) {
    return {
      name: error.name,
      message: error.message,
      ...(error.cause === undefined || depth > 8
        ? {}
        : { cause: errorToJSON(error.cause, depth + 1) }),
    };
  }
  return { message: String(error) };
}

/** The chain `error`, `error.cause`, `error.cause.cause`, ... (at most 16 deep). */
export function causeChain(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = error;
  while (current !== undefined && chain.length < 16 && !chain.includes(current)) {
    chain.push(current);
    current = current instanceof Error ? current.cause : undefined;
  }
  return chain;
}
