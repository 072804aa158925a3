import { PluginError } from "./plugin_errors.ts";

/** The codes of {@linkcode StreamError}. */
export type StreamErrorCode =
  /** A plain call of a method that streams (`methods.<m>.stream: true`): use `host.stream()`. */
  | "STREAM_REQUIRED"
  /** The plugin (its SDK, or where it runs) cannot stream. */
  | "STREAM_NOT_SUPPORTED"
  /** The plugin broke the streaming protocol (a chunk without credit, out of order, ...). */
  | "STREAM_PROTOCOL"
  /** The plugin sent no chunk for `idleTimeoutMs` while it had credit. */
  | "STREAM_IDLE"
  /**
   * The stream's deadline passed while the plugin had no credit: its consumer did not read.
   * Not the plugin's failure (the circuit breaker does not count it).
   */
  | "STREAM_NOT_READ";

/**
 * A stream could not be opened or was ended because of how it was asked for or answered.
 * Only the stream fails: the plugin keeps serving (a violation is logged as a warning).
 *
 * @example
 * ```ts
 * try {
 *   await host.call("streamer", "count", { n: 3 });
 * } catch (e) {
 *   if (e instanceof StreamError && e.code === "STREAM_REQUIRED") {
 *     for await (const n of host.stream("streamer", "count", { n: 3 })) console.log(n);
 *   }
 * }
 * ```
 */
export class StreamError extends PluginError {
  declare readonly code: StreamErrorCode;

  /**
   * @param code see {@linkcode StreamErrorCode}
   * @param plugin the plugin's name
   * @param method the method streamed
   * @param message what failed and what to do
   * @param options cause and more details
   */
  constructor(
    code: StreamErrorCode,
    plugin: string,
    method: string,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, { plugin, method, ...options.details }, { cause: options.cause });
  }
}

/** The refusal of a plain call of a streaming method. */
export function streamRequired(plugin: string, method: string): StreamError {
  return new StreamError(
    "STREAM_REQUIRED",
    plugin,
    method,
    `${plugin}.${method} streams its result (methods.${method}.stream in its manifest): ` +
      "read it with host.stream(), or over HTTP with Accept: text/event-stream or " +
      "application/x-ndjson",
  );
}

/** The refusal of a stream by a plugin that cannot stream; `where` says what lacks it. */
export function streamNotSupported(plugin: string, method: string, where: string): StreamError {
  return new StreamError(
    "STREAM_NOT_SUPPORTED",
    plugin,
    method,
    `plugin ${plugin} cannot stream ${method}: ${where} does not offer streaming ` +
      "(a plugin on an older SDK, or a remote plugin); call it with host.call()",
  );
}
