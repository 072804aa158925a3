import { getConfig, getLogger, type Logger, type LogLevel, withContext } from "@logtape/logtape";
import { JsonRpcPeer, RpcError, type RpcHandler, RpcRemoteError } from "../rpc/mod.ts";
import { escapeControl, LineSplitter } from "./line_splitter.ts";
import {
  HandshakeError,
  PluginCallCancelledError,
  PluginCallError,
  PluginCrashedError,
  PluginError,
  PluginNotFoundError,
  PluginProtocolError,
  PluginTimeoutError,
  PluginUnavailableError,
} from "./plugin_errors.ts";

/** How to start one plugin process. */
export interface PluginProcessOptions {
  /** Plugin name (log category, error messages). */
  readonly name: string;
  /** Program to execute (deno, or setpriv in front of it). */
  readonly bin: string;
  /** Its arguments. */
  readonly args: readonly string[];
  /** The child's whole environment (spawned with `clearEnv`). */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory (the plugin folder). */
  readonly cwd: string;
  /** The protocol version the manifest declares. */
  readonly protocolVersion: number;
  /** The manifest's version, compared with the one the plugin announces. */
  readonly version?: string;
  /** How long to wait for `$/ready`. */
  readonly startTimeoutMs: number;
  /** Longest accepted stdout line. */
  readonly maxLineBytes: number;
  /** Grace period of each stop step. */
  readonly stopGraceMs: number;
  /** Host services the plugin may call (`host/...`). */
  readonly handlers?: Readonly<Record<string, RpcHandler>>;
  /** Start-up is abandoned (and the process killed) when this aborts. */
  readonly signal?: AbortSignal;
  /**
   * Runs once the process has exited, before `exited` resolves: releases what the host gave
   * it (the children its process service started, ...). Its errors are logged.
   */
  readonly onExit?: () => void | Promise<void>;
}

/** What the plugin announced in `$/ready`. */
export interface ReadyInfo {
  readonly protocol: number;
  readonly methods: readonly string[];
  /** The name and version the plugin gave `serve()`, when it gave them. */
  readonly name?: string;
  readonly version?: string;
}

/** How the process ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: string | null;
  /** Last stderr lines. */
  readonly stderr: readonly string[];
  /** Whether the host asked it to stop. */
  readonly requested: boolean;
}

const STDERR_KEEP = 20;
const LEVELS: Record<string, LogLevel> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warn: "warning",
  warning: "warning",
  error: "error",
  fatal: "fatal",
};

/** Logs at a level chosen at run time. */
function logAt(
  logger: Logger,
  level: LogLevel,
  message: string,
  props: Record<string, unknown>,
): void {
  switch (level) {
    case "trace":
      return logger.trace(message, props);
    case "debug":
      return logger.debug(message, props);
    case "info":
      return logger.info(message, props);
    case "warning":
      return logger.warn(message, props);
    case "error":
      return logger.error(message, props);
    case "fatal":
      return logger.fatal(message, props);
  }
}

function timeout(ms: number): { promise: Promise<"timeout">; clear(): void } {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<"timeout">((
    resolve,
  ) => (id = setTimeout(() => resolve("timeout"), ms)));
  return { promise, clear: () => clearTimeout(id) };
}

/**
 * One running plugin process: spawn, handshake, calls, stderr to logs, stop. Knows nothing of
 * restarts (see `PluginSupervisor`). `stop()` is idempotent: `$/shutdown`, close stdin, wait,
 * SIGTERM, wait, SIGKILL.
 */
export class PluginProcess implements AsyncDisposable {
  readonly #options: PluginProcessOptions;
  readonly #child: Deno.ChildProcess;
  readonly #peer: JsonRpcPeer;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #stderrTail: string[] = [];
  readonly #log: Logger;
  readonly #exited: Promise<ExitInfo>;
  #ready: ReadyInfo | undefined;
  #onReady: ((info: unknown) => void) | undefined;
  #stopping: Promise<ExitInfo> | undefined;
  #exit: ExitInfo | undefined;
  #failReason: PluginError | undefined;
  #stdoutGarbage = 0;
  /** LogTape's implicit context of each call in flight that had one, by request id. */
  readonly #contexts = new Map<number, Record<string, unknown>>();

  private constructor(options: PluginProcessOptions) {
    this.#options = options;
    this.#log = getLogger(["plugsconc", "plugin", options.name]);
    this.#child = new Deno.Command(options.bin, {
      args: [...options.args],
      env: { ...options.env },
      clearEnv: true,
      cwd: options.cwd,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#peer = new JsonRpcPeer({
      send: (bytes) => this.#writer.write(bytes),
      maxLineBytes: options.maxLineBytes,
      handlers: options.handlers,
      onNotification: (method, params) => this.#onNotification(method, params),
      onProtocolError: (error) => this.#onProtocolError(error),
    });
    const stderrDone = this.#pumpStderr();
    const stdoutDone = this.#pumpStdout();
    this.#exited = this.#child.status.then(async (status) => {
      // Give the pipes a moment to drain so the last stderr lines are in the error.
      const t = timeout(500);
      await Promise.race([Promise.all([stderrDone, stdoutDone]), t.promise]);
      t.clear();
      const exit: ExitInfo = {
        code: status.signal === null ? status.code : null,
        signal: status.signal,
        stderr: [...this.#stderrTail],
        requested: this.#stopping !== undefined,
      };
      this.#exit = exit;
      this.#peer.close(
        this.#failReason ??
          (exit.requested
            ? new PluginUnavailableError(options.name, "stopped", "it was stopped by the host")
            : new PluginCrashedError({
              plugin: options.name,
              exitCode: exit.code,
              signal: exit.signal,
              stderr: exit.stderr,
            })),
      );
      this.#writer.close().catch(() => {});
      try {
        await options.onExit?.();
      } catch (error) {
        this.#log.error("releasing what plugin {plugin} held failed: {error}", {
          plugin: options.name,
          error,
        });
      }
      return exit;
    });
  }

  /**
   * Spawns the plugin and waits for its `$/ready` (at most `startTimeoutMs`).
   *
   * @throws {HandshakeError} when it exits first, times out, or speaks another protocol
   */
  static async start(options: PluginProcessOptions): Promise<PluginProcess> {
    let proc: PluginProcess;
    try {
      proc = new PluginProcess(options);
    } catch (cause) {
      throw new HandshakeError(options.name, `cannot spawn ${options.bin}: ${String(cause)}`, [], {
        cause,
      });
    }
    const ready = new Promise<unknown>((resolve) => (proc.#onReady = resolve));
    const t = timeout(options.startTimeoutMs);
    const aborted = new Promise<"aborted">((resolve) => {
      if (options.signal?.aborted) resolve("aborted");
      options.signal?.addEventListener("abort", () => resolve("aborted"), { once: true });
    });
    try {
      const first = await Promise.race([ready, proc.#exited, t.promise, aborted]);
      if (first === "timeout" || first === "aborted") {
        await proc.kill();
        throw new HandshakeError(
          options.name,
          first === "timeout"
            ? `no $/ready within ${options.startTimeoutMs} ms (start_timeout_ms)`
            : "start-up was cancelled",
          proc.#stderrTail,
        );
      }
      if (first !== null && typeof first === "object" && "requested" in first) {
        const exit = first as ExitInfo;
        throw new HandshakeError(
          options.name,
          `it exited before $/ready (${exit.signal ?? `code ${exit.code}`})`,
          exit.stderr,
        );
      }
      const info = first as { protocol?: unknown; methods?: unknown };
      if (info.protocol !== options.protocolVersion) {
        await proc.kill();
        throw new HandshakeError(
          options.name,
          `it speaks protocol ${JSON.stringify(info.protocol)}, the manifest and host use ` +
            `protocol ${options.protocolVersion}; update the plugin or its SDK`,
        );
      }
      const methods = Array.isArray(info.methods)
        ? info.methods.filter((m) => typeof m === "string")
        : [];
      const { name, version } = info as { name?: unknown; version?: unknown };
      if (name !== undefined && name !== null && name !== options.name) {
        // The folder's entrypoint is another plugin's program (a copied main.ts, a bad merge).
        await proc.kill();
        throw new HandshakeError(
          options.name,
          `it announced itself as ${JSON.stringify(name)}, but its manifest names it ` +
            `${JSON.stringify(options.name)}; fix serve({ name }) or plugin.name`,
        );
      }
      if (
        typeof version === "string" && options.version !== undefined &&
        version !== options.version
      ) {
        proc.#log.warning(
          "plugin {plugin} announced version {announced}, its manifest says {version}",
          { plugin: options.name, announced: version, version: options.version },
        );
      }
      proc.#ready = {
        protocol: options.protocolVersion,
        methods,
        ...(typeof name === "string" ? { name } : {}),
        ...(typeof version === "string" ? { version } : {}),
      };
      return proc;
    } finally {
      t.clear();
    }
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid;
  }

  /** What the plugin announced. */
  get ready(): ReadyInfo {
    return this.#ready ?? { protocol: this.#options.protocolVersion, methods: [] };
  }

  /** Resolves when the process has exited. */
  get exited(): Promise<ExitInfo> {
    return this.#exited;
  }

  /** How it exited, once it has. */
  get exitInfo(): ExitInfo | undefined {
    return this.#exit;
  }

  /** Calls in flight. */
  get inFlight(): number {
    return this.#peer.pendingCount;
  }

  /** Non-protocol lines the plugin wrote to stdout (logged, not fatal). */
  get stdoutGarbage(): number {
    return this.#stdoutGarbage;
  }

  /** Last stderr lines. */
  get stderrTail(): readonly string[] {
    return [...this.#stderrTail];
  }

  /**
   * Calls `method`. Rejects with `PluginTimeoutError` (after `$/cancel`),
   * `PluginCallCancelledError`, `PluginCallError` (the handler threw), `PluginNotFoundError`
   * (no such method), `PluginCrashedError` or `PluginProtocolError`.
   */
  async call(
    method: string,
    params: unknown,
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<unknown> {
    // The caller's implicit log context (e.g. the gateway's request id) goes to the records
    // the handler logs with ctx.log during this call.
    const context = getConfig()?.contextLocalStorage?.getStore() as
      | Record<string, unknown>
      | undefined;
    let id: number | undefined;
    try {
      return await this.#peer.request(
        method,
        params,
        context === undefined ? options : {
          ...options,
          onId: (i) => this.#contexts.set(id = i, context),
        },
      );
    } catch (e) {
      throw this.#mapError(e, method, options.timeoutMs);
    } finally {
      if (id !== undefined) this.#contexts.delete(id);
    }
  }

  /** Sends a request without mapping errors (health checks). */
  request(
    method: string,
    params?: unknown,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ) {
    return this.#peer.request(method, params, options);
  }

  #mapError(e: unknown, method: string, timeoutMs: number | undefined): unknown {
    const name = this.#options.name;
    if (e instanceof RpcRemoteError) {
      if (e.rpcCode === -32601) return new PluginNotFoundError(name, method, this.ready.methods);
      return new PluginCallError(name, method, {
        code: e.rpcCode,
        message: e.remoteMessage,
        data: e.data,
      }, {
        cause: e,
      });
    }
    if (e instanceof RpcError) {
      if (e.code === "RPC_TIMEOUT") {
        return new PluginTimeoutError(name, method, timeoutMs ?? 0, { cause: e });
      }
      if (e.code === "RPC_CANCELLED") {
        return new PluginCallCancelledError(name, method, { cause: e });
      }
      if (e.code === "RPC_CLOSED") {
        const reason = e.cause;
        if (reason instanceof PluginCrashedError) {
          return new PluginCrashedError({
            plugin: name,
            method,
            exitCode: reason.exitCode,
            signal: reason.signal,
            stderr: reason.stderr,
          }, { cause: e });
        }
        if (reason instanceof PluginProtocolError) {
          return new PluginProtocolError(name, reason.reason, { method, cause: reason });
        }
        if (reason instanceof PluginError) return reason;
        return new PluginUnavailableError(name, "stopped", "its connection closed", {
          method,
          cause: e,
        });
      }
      if (e.code === "RPC_INVALID_MESSAGE") {
        return new PluginCallError(name, method, { code: -32602, message: e.message }, {
          cause: e,
        });
      }
    }
    return e;
  }

  /**
   * Stops the process, politely then by force; idempotent. Resolves with how it exited.
   * @param graceMs per step (default: the `stopGraceMs` option)
   */
  stop(graceMs = this.#options.stopGraceMs): Promise<ExitInfo> {
    if (this.#stopping) return this.#stopping;
    this.#stopping = (async () => {
      if (this.#exit) return this.#exit;
      await Promise.race([
        this.#peer.request("$/shutdown", undefined, { timeoutMs: graceMs }).catch(() => {}),
        this.#exited,
      ]);
      await this.#writer.close().catch(() => {});
      for (const signal of ["SIGTERM", "SIGKILL"] as const) {
        const t = timeout(graceMs);
        const r = await Promise.race([this.#exited, t.promise]);
        t.clear();
        if (r !== "timeout") return r;
        this.#log.warning("plugin {plugin} did not stop within {graceMs} ms; sending {signal}", {
          plugin: this.#options.name,
          graceMs,
          signal,
        });
        try {
          this.#child.kill(signal);
        } catch { /* already gone */ }
      }
      return await this.#exited;
    })();
    return this.#stopping;
  }

  /** Kills the process now (SIGKILL) and waits for it. */
  async kill(reason?: PluginError): Promise<ExitInfo> {
    this.#failReason ??= reason;
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
    return await this.#exited;
  }

  /** Same as {@link PluginProcess.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #onNotification(method: string, params: unknown): void {
    if (method === "$/ready") {
      const cb = this.#onReady;
      this.#onReady = undefined;
      cb?.(params ?? {});
      return;
    }
    if (method === "$/log") {
      const p = (params ?? {}) as {
        level?: unknown;
        message?: unknown;
        fields?: unknown;
        request?: unknown;
      };
      const level = LEVELS[String(p.level).toLowerCase()] ?? "info";
      const fields = p.fields !== null && typeof p.fields === "object"
        ? p.fields as Record<string, unknown>
        : {};
      const emit = () =>
        logAt(this.#log, level, "{message}", {
          ...fields,
          plugin: this.#options.name,
          message: escapeControl(String(p.message ?? "")),
        });
      const context = typeof p.request === "number" ? this.#contexts.get(p.request) : undefined;
      if (context === undefined) emit();
      else withContext(context, emit);
      return;
    }
    this.#log.debug("plugin {plugin} sent an unknown notification {method}", {
      plugin: this.#options.name,
      method,
    });
  }

  #onProtocolError(error: RpcError): void {
    if (error.code === "RPC_LINE_TOO_LONG") {
      const reason = new PluginProtocolError(
        this.#options.name,
        `a stdout line is longer than max_line_bytes (${this.#options.maxLineBytes} bytes)`,
        { cause: error },
      );
      this.#log.error("{message}", { plugin: this.#options.name, message: reason.message });
      void this.kill(reason);
      return;
    }
    if (
      error.code === "RPC_INVALID_JSON" || error.code === "RPC_INVALID_UTF8" ||
      error.code === "RPC_INVALID_MESSAGE"
    ) {
      this.#stdoutGarbage++;
    }
    this.#log.warning("plugin {plugin} wrote bad protocol output: {message}", {
      plugin: this.#options.name,
      code: error.code,
      message: escapeControl(error.message),
      count: this.#stdoutGarbage,
    });
  }

  async #pumpStdout(): Promise<void> {
    const reader = this.#child.stdout.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.#peer.receive(value);
      }
    } catch {
      /* the process is gone */
    } finally {
      reader.releaseLock();
    }
  }

  async #pumpStderr(): Promise<void> {
    const splitter = new LineSplitter();
    const onLine = (line: string) => this.#onStderrLine(line);
    try {
      for await (const chunk of this.#child.stderr) splitter.push(chunk, onLine);
    } catch { /* the process is gone */ }
    splitter.end(onLine);
  }

  #onStderrLine(raw: string): void {
    const line = escapeControl(raw);
    this.#stderrTail.push(line.length > 500 ? line.slice(0, 500) + "…" : line);
    if (this.#stderrTail.length > STDERR_KEEP) this.#stderrTail.shift();
    if (raw.startsWith("{")) {
      try {
        const o = JSON.parse(raw) as Record<string, unknown>;
        if (typeof o.message === "string") {
          const { level, message, ...fields } = o;
          logAt(this.#log, LEVELS[String(level).toLowerCase()] ?? "info", "{message}", {
            ...fields,
            plugin: this.#options.name,
            stream: "stderr",
            message: escapeControl(message),
          });
          return;
        }
      } catch { /* plain text */ }
    }
    this.#log.info("{message}", { plugin: this.#options.name, stream: "stderr", message: line });
  }
}
