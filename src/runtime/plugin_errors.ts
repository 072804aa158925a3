import { PlugsconcError } from "../errors/mod.ts";

/** The informative last lines of a plugin's stderr: no stack frames or caret lines. */
export function stderrSummary(lines: readonly string[], max = 3): string {
  const useful = lines.filter((l) => l.trim() !== "" && !/^\s*(at\s|\^|~)/.test(l));
  return useful.slice(-max).map((l) => l.trim()).join(" | ");
}

/** Where a plugin error happened. */
export interface PluginErrorDetails {
  readonly plugin: string;
  readonly method?: string;
  readonly [key: string]: unknown;
}

/**
 * The base of every error about a plugin or a call to it. `plugin` and `method` are in
 * `details`; the message says what to do.
 */
export class PluginError extends PlugsconcError {
  /** The plugin's name. */
  readonly plugin: string;
  /** The method called, if any. */
  readonly method: string | undefined;

  /**
   * @param code stable code
   * @param message what failed and what to do
   * @param details plugin, method and more
   * @param options cause
   */
  constructor(
    code: string,
    message: string,
    details: PluginErrorDetails,
    options: { cause?: unknown } = {},
  ) {
    super(code, message, { cause: options.cause, details: { ...details } });
    this.plugin = details.plugin;
    this.method = details.method;
  }
}

/** The plugin process exited or was killed while calls were in flight (`PLUGIN_CRASHED`). */
export class PluginCrashedError extends PluginError {
  /** Exit code, if it exited. */
  readonly exitCode: number | null;
  /** Signal that killed it, if any. */
  readonly signal: string | null;
  /** The last lines the plugin wrote to stderr. */
  readonly stderr: readonly string[];

  /** @param info plugin, exit code/signal, last stderr lines, method if a call failed */
  constructor(
    info: {
      plugin: string;
      method?: string;
      exitCode: number | null;
      signal: string | null;
      stderr: readonly string[];
      reason?: string;
    },
    options: { cause?: unknown } = {},
  ) {
    const how = info.signal !== null
      ? `was killed by ${info.signal}`
      : `exited with code ${info.exitCode}`;
    const summary = stderrSummary(info.stderr);
    const tail = summary ? `; last stderr: ${summary}` : "";
    super(
      "PLUGIN_CRASHED",
      `plugin ${info.plugin} ${how}${info.reason ? ` (${info.reason})` : ""}${
        info.method ? ` during ${info.method}` : ""
      }${tail}; it is restarted if its restart budget allows (see plugsconc logs)`,
      {
        plugin: info.plugin,
        method: info.method,
        exitCode: info.exitCode,
        signal: info.signal,
        stderr: info.stderr,
      },
      options,
    );
    this.exitCode = info.exitCode;
    this.signal = info.signal;
    this.stderr = info.stderr;
  }
}

/** A call took longer than its timeout; the plugin was sent `$/cancel` (`PLUGIN_TIMEOUT`). */
export class PluginTimeoutError extends PluginError {
  /** The timeout that expired, in ms. */
  readonly timeoutMs: number;

  /** @param plugin name @param method called @param timeoutMs that expired */
  constructor(
    plugin: string,
    method: string,
    timeoutMs: number,
    options: { cause?: unknown } = {},
  ) {
    super(
      "PLUGIN_TIMEOUT",
      `${plugin}.${method} did not answer within ${timeoutMs} ms and was cancelled; raise the ` +
        `timeout (--timeout, plugins.${plugin}.timeout_ms, or the manifest's resources.timeout_ms)`,
      { plugin, method, timeoutMs },
      options,
    );
    this.timeoutMs = timeoutMs;
  }
}

/** The caller's signal aborted the call (`PLUGIN_CALL_CANCELLED`). */
export class PluginCallCancelledError extends PluginError {
  /** @param plugin name @param method called */
  constructor(plugin: string, method: string, options: { cause?: unknown } = {}) {
    super("PLUGIN_CALL_CANCELLED", `${plugin}.${method} was cancelled by the caller`, {
      plugin,
      method,
    }, options);
  }
}

/** The plugin's handler threw; `remoteCode` is the JSON-RPC error code (`PLUGIN_CALL_FAILED`). */
export class PluginCallError extends PluginError {
  /** JSON-RPC error code. */
  readonly remoteCode: number;
  /** JSON-RPC error data. */
  readonly data: unknown;

  /** @param plugin name @param method called @param remote the error object the plugin sent */
  constructor(
    plugin: string,
    method: string,
    remote: { code: number; message: string; data?: unknown },
    options: { cause?: unknown } = {},
  ) {
    const name = (remote.data as { name?: unknown } | undefined)?.name;
    const shown = typeof name === "string" && name !== "Error"
      ? `${name}: ${remote.message}`
      : remote.message;
    super("PLUGIN_CALL_FAILED", `${plugin}.${method} failed: ${shown}`, {
      plugin,
      method,
      remoteCode: remote.code,
      data: remote.data,
    }, options);
    this.remoteCode = remote.code;
    this.data = remote.data;
  }
}

/** No such plugin (`PLUGIN_NOT_FOUND`) or method (`METHOD_NOT_FOUND`). */
export class PluginNotFoundError extends PluginError {
  /** @param plugin name @param method if the method is what is missing @param known names */
  constructor(plugin: string, method: string | undefined, known: readonly string[]) {
    super(
      method === undefined ? "PLUGIN_NOT_FOUND" : "METHOD_NOT_FOUND",
      method === undefined
        ? `no plugin named ${plugin}; known plugins: ${known.join(", ") || "(none)"}`
        : `plugin ${plugin} has no method ${method}; its methods: ${known.join(", ") || "(none)"}`,
      { plugin, method, known },
    );
  }
}

/** The plugin is not running: stopped, failed, or refused at start (`PLUGIN_UNAVAILABLE`). */
export class PluginUnavailableError extends PluginError {
  /** @param plugin name @param state its state @param reason why, and what to do */
  constructor(
    plugin: string,
    state: string,
    reason: string,
    options: { cause?: unknown; method?: string } = {},
  ) {
    super(
      "PLUGIN_UNAVAILABLE",
      `plugin ${plugin} is ${state}: ${reason}`,
      { plugin, method: options.method, state },
      options,
    );
  }
}

/** The plugin did not complete the handshake (`PLUGIN_HANDSHAKE`). */
export class HandshakeError extends PluginError {
  /** @param plugin name @param reason what went wrong @param stderr last stderr lines */
  constructor(
    plugin: string,
    reason: string,
    stderr: readonly string[] = [],
    options: { cause?: unknown } = {},
  ) {
    const summary = stderrSummary(stderr);
    const tail = summary ? `; last stderr: ${summary}` : "";
    super("PLUGIN_HANDSHAKE", `plugin ${plugin} failed the handshake: ${reason}${tail}`, {
      plugin,
      stderr,
    }, options);
  }
}

/** The plugin broke the wire protocol (for example an over-long line) (`PLUGIN_PROTOCOL`). */
export class PluginProtocolError extends PluginError {
  /** What the plugin did wrong. */
  readonly reason: string;

  /** @param plugin name @param reason what it sent @param method if a call failed */
  constructor(plugin: string, reason: string, options: { cause?: unknown; method?: string } = {}) {
    super(
      "PLUGIN_PROTOCOL",
      `plugin ${plugin} broke the protocol: ${reason}; it is restarted`,
      { plugin, method: options.method, reason },
      options,
    );
    this.reason = reason;
  }
}
