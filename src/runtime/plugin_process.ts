import { getConfig, getLogger, type Logger } from "@logtape/logtape";
import { FRAMING_LP1, JsonRpcPeer, type RpcError } from "../rpc/mod.ts";
import { escapeControl, LineSplitter } from "./line_splitter.ts";
import type { LogBudget } from "./log_budget.ts";
import { PluginLog } from "./plugin_log.ts";
import { callError } from "./call_error.ts";
import { type CallContext, callContext, strictestContext } from "./call_context.ts";
import { configureOnStart } from "./configure_handshake.ts";
import { checkReady, hasFeature } from "./_ready_check.ts";
import {
  PIPE_CHUNK,
  protocolGate,
  pumpConn,
  type Sink,
  textSink,
  writeAll,
} from "./_protocol_input.ts";
import { PluginStreams, type StreamCallOptions } from "./plugin_streams.ts";
import { streamNotSupported } from "./stream_error.ts";
import {
  HandshakeError,
  PluginCrashedError,
  type PluginError,
  PluginProtocolError,
  PluginUnavailableError,
} from "./plugin_errors.ts";

export type { ExitInfo, PluginProcessOptions, ReadyInfo } from "./plugin_process_options.ts";
import type { ExitInfo, PluginProcessOptions, ReadyInfo } from "./plugin_process_options.ts";

const STDERR_KEEP = 20;

function timeout(ms: number): { promise: Promise<"timeout">; clear(): void } {
  const { promise, resolve } = Promise.withResolvers<"timeout">();
  const id = setTimeout(() => resolve("timeout"), ms);
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
  readonly #plugLog: PluginLog;
  readonly #exited: Promise<ExitInfo>;
  #ready: ReadyInfo | undefined;
  #onReady: ((info: unknown) => void) | undefined;
  #stopping: Promise<ExitInfo> | undefined;
  #exit: ExitInfo | undefined;
  #failReason: PluginError | undefined;
  #stdoutGarbage = 0;
  /** LogTape's implicit context of each call in flight that had one, by request id. */
  readonly #contexts = new Map<number, Record<string, unknown>>();
  /** Chain, deadline and end of each call in flight, by request id (`keepCallContexts`). */
  readonly #callContexts = new Map<number, CallContext>();
  /** Its streams in flight (`host.stream`). */
  readonly #streams: PluginStreams;
  /** Where the peer's messages go: stdin, or the socket once the plugin connected. */
  #send: (bytes: Uint8Array) => Promise<void> = (bytes) => this.#writer.write(bytes);
  /** What reads stdout: the protocol's gate, or (after the switch to the socket) the text sink. */
  #stdoutSink: Sink | undefined;
  #transport: "stdio" | "unix" = "stdio";

  private constructor(options: PluginProcessOptions) {
    this.#options = options;
    this.#log = getLogger(["plugsconc", "plugin", options.name]);
    this.#plugLog = new PluginLog({
      plugin: options.name,
      budget: options.logBudget,
      logger: this.#log,
      contextOf: (id) => this.#contexts.get(id),
    });
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
      send: (bytes) => this.#send(bytes),
      gatherWrites: true,
      maxLineBytes: options.maxLineBytes,
      handlers: options.handlers,
      onNotification: (method, params) => this.#onNotification(method, params),
      onProtocolError: (error) => this.#onProtocolError(error),
    });
    this.#streams = new PluginStreams(
      options.name,
      (method, params) => this.notify(method, params),
      options.maxLineBytes,
    );
    const stderrDone = this.#pumpStderr();
    const stdoutDone = this.#pumpStdout();
    const socketDone = this.#linkSocket();
    this.#exited = this.#child.status.then(async (status) => {
      // A socket it never connected to has nothing to drain.
      if (this.#transport === "stdio") void options.socket?.close();
      // Give the pipes a moment to drain so the last stderr lines are in the error.
      const t = timeout(500);
      await Promise.race([Promise.all([stderrDone, stdoutDone, socketDone]), t.promise]);
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
      // Its folder goes meanwhile: the supervisor must learn of the exit at once.
      const socketClosed = options.socket?.close();
      // Drops not reported yet are reported now, while the host's logging is still up.
      this.#plugLog.budget.flush();
      try {
        await options.onExit?.();
      } catch (error) {
        this.#log.error("releasing what plugin {plugin} held failed: {error}", {
          plugin: options.name,
          error,
        });
      }
      await socketClosed;
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
      await options.socket?.close();
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
      const info = first as { features?: unknown };
      proc.#ready = await checkReady(info, options, {
        kill: () => proc.kill(),
        warn: (message, props) => proc.#log.warning(message, props),
      });
      await configureOnStart(proc, options, info.features, t.promise);
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

  /** Whether the host sends it length-prefixed frames (its `$/ready` listed `lp1`). */
  get framed(): boolean {
    return this.#peer.framed;
  }

  /** What the protocol runs over: the stdio pipes, or the plugin's Unix socket. */
  get transport(): "stdio" | "unix" {
    return this.#transport;
  }

  /** Non-protocol lines the plugin wrote to stdout (logged, not fatal). */
  get stdoutGarbage(): number {
    return this.#stdoutGarbage;
  }

  /** Last stderr lines. */
  get stderrTail(): readonly string[] {
    return [...this.#stderrTail];
  }

  /** The log budget its records pass (shared with the plugin's other processes, if given). */
  get logBudget(): LogBudget {
    return this.#plugLog.budget;
  }

  /**
   * Calls `method`. Rejects with `PluginTimeoutError` (after `$/cancel`),
   * `PluginCallCancelledError`, `PluginCallError` (the handler threw), `PluginNotFoundError`
   * (no such method), `PluginCrashedError` or `PluginProtocolError`.
   */
  async call(
    method: string,
    params: unknown,
    options: { signal?: AbortSignal; timeoutMs?: number; chain?: readonly string[] } = {},
  ): Promise<unknown> {
    // The caller's implicit log context (e.g. the gateway's request id) goes to the records
    // the handler logs with ctx.log during this call.
    const context = getConfig()?.contextLocalStorage?.getStore() as
      | Record<string, unknown>
      | undefined;
    const keep = this.#options.keepCallContexts === true;
    let id: number | undefined;
    let ended: AbortController | undefined;
    try {
      return await this.#peer.request(
        method,
        params,
        context === undefined && !keep ? options : {
          ...options,
          onId: (i) => {
            id = i;
            if (context !== undefined) this.#contexts.set(i, context);
            if (!keep) return;
            ended = new AbortController();
            this.#callContexts.set(i, callContext(this.#options.name, options, ended));
          },
        },
      );
    } catch (e) {
      throw callError(e, {
        plugin: this.#options.name,
        method,
        timeoutMs: options.timeoutMs,
        methods: this.ready.methods,
        maxMessage: this.#plugLog.budget.maxRecordBytes / 2,
      });
    } finally {
      if (id !== undefined) {
        this.#contexts.delete(id);
        this.#callContexts.delete(id);
      }
      ended?.abort(new Error(`the call of ${method} that made this request has ended`));
    }
  }

  /**
   * The call in flight with request `id` (what a `host/plugins.call` of this process names as
   * its `request`), only with `keepCallContexts`. An `id` naming none of them gets the
   * strictest of all its calls in flight (`strictestContext`), and `undefined` only when none
   * is in flight.
   */
  callContext(id: unknown): CallContext | undefined {
    const named = typeof id === "number" ? this.#callContexts.get(id) : undefined;
    return named ?? strictestContext(this.#callContexts.values());
  }

  /**
   * Streams `method` (see `PluginStreams`): its chunks go to `options.sink`; resolves with its
   * final result. Rejects as {@linkcode PluginProcess.call}, and with `StreamError`.
   */
  stream(method: string, params: unknown, options: StreamCallOptions): Promise<unknown> {
    if (!this.#streams.enabled) {
      const why = 'its SDK (no "stream" in its $/ready features)';
      return Promise.reject(streamNotSupported(this.#options.name, method, why));
    }
    const context = getConfig()?.contextLocalStorage?.getStore() as
      | Record<string, unknown>
      | undefined;
    const keep = this.#options.keepCallContexts === true;
    const ended = new AbortController();
    return this.#streams.run(method, params, options, {
      request: (m, p, o) => this.#peer.request(m, p, o),
      mapError: (e) =>
        callError(e, {
          plugin: this.#options.name,
          method,
          timeoutMs: options.timeoutMs,
          methods: this.ready.methods,
          maxMessage: this.#plugLog.budget.maxRecordBytes / 2,
        }),
      onId: (id) => {
        if (context !== undefined) this.#contexts.set(id, context);
        // Its handler may call other plugins too (chain: this plugin, deadline: the stream's).
        if (keep) this.#callContexts.set(id, callContext(this.#options.name, options, ended));
      },
      onEnd: (id) => {
        this.#contexts.delete(id);
        this.#callContexts.delete(id);
        ended.abort(new Error(`the stream of ${method} that made this request has ended`));
      },
    });
  }

  /** Sends a notification; a write failure (the process is gone) is ignored. */
  notify(method: string, params?: unknown): void {
    this.#peer.notify(method, params).catch(() => {});
  }

  /** Sends a request without mapping errors (health checks). */
  request(
    method: string,
    params?: unknown,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ) {
    return this.#peer.request(method, params, options);
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
      // A plugin that accepts frames gets them from now on (it reads lines too, so what was
      // sent before stays valid); an older one keeps NDJSON.
      const framing = (params as { framing?: unknown } | undefined)?.framing;
      if (cb && Array.isArray(framing) && framing.includes(FRAMING_LP1)) this.#peer.useFrames();
      if (cb) this.#streams.enabled = hasFeature(params, "stream");
      // It came over stdout: the plugin keeps the pipes, and the socket it was offered goes.
      if (cb && this.#transport === "stdio") void this.#options.socket?.close();
      cb?.(params ?? {});
      return;
    }
    if (method === "$/chunk") return this.#streams.onChunk(params);
    if (method === "$/log") this.#plugLog.onLog(params);
    else this.#plugLog.onUnknownNotification(method);
  }

  #onProtocolError(error: RpcError): void {
    if (error.code === "RPC_LINE_TOO_LONG") {
      const reason = new PluginProtocolError(
        this.#options.name,
        `a stdout line is longer than max_line_bytes (${this.#options.maxLineBytes} bytes)`,
        { cause: error },
      );
      this.#plugLog.onProtocolFatal(reason.message);
      void this.kill(reason);
      return;
    }
    if (error.code === "RPC_WRITE_BACKLOG") {
      // It stopped reading its stdin while the host still had things to tell it (answers to
      // its requests, say): the queue is dropped and the process goes, as with a long line.
      const reason = new PluginProtocolError(
        this.#options.name,
        `it does not read its stdin: ${error.details.queuedBytes} bytes of messages to it were ` +
          `waiting (the bound is ${error.details.maxQueuedBytes} bytes)`,
        { cause: error },
      );
      this.#plugLog.onProtocolFatal(reason.message);
      void this.kill(reason);
      return;
    }
    if (
      error.code === "RPC_INVALID_JSON" || error.code === "RPC_INVALID_UTF8" ||
      error.code === "RPC_INVALID_MESSAGE"
    ) {
      this.#stdoutGarbage++;
    }
    this.#plugLog.onProtocolWarning(error, this.#stdoutGarbage);
  }

  async #pumpStdout(): Promise<void> {
    // Into one reused buffer (the decoder copies what it keeps): a plugin writing at pipe speed
    // must not make the host allocate a new chunk per read and wait for the GC to free it.
    const reader = this.#child.stdout.getReader({ mode: "byob" });
    this.#stdoutSink ??= protocolGate(this.#options.name, this.#peer, this.#streams, this.#plugLog);
    let buf = new Uint8Array(PIPE_CHUNK);
    try {
      for (;;) {
        const { value, done } = await reader.read(buf);
        if (done) return;
        this.#stdoutSink.push(value);
        buf = new Uint8Array(value.buffer);
      }
    } catch {
      /* the process is gone */
    } finally {
      // A line start the gate held back reaches the decoder (reported as truncated).
      this.#stdoutSink.end();
      reader.releaseLock();
    }
  }

  /**
   * Once the plugin connects to its socket (`options.socket`), the protocol runs over it: the
   * peer writes there, and reads what comes through a gate of its own; stdout is text from then
   * on. `$/ready` comes over the socket, so nothing the protocol needs was on stdout.
   */
  async #linkSocket(): Promise<void> {
    const conn = await this.#options.socket?.accept();
    if (conn === undefined || this.#exit !== undefined) return;
    this.#transport = "unix";
    this.#send = (bytes) => writeAll(conn, bytes);
    this.#stdoutSink = textSink(this.#plugLog);
    await pumpConn(
      conn,
      protocolGate(this.#options.name, this.#peer, this.#streams, this.#plugLog),
    );
  }

  async #pumpStderr(): Promise<void> {
    const splitter = new LineSplitter(this.#plugLog.stderrLineBytes);
    const onLine = (line: string) => this.#onStderrLine(line);
    const reader = this.#child.stderr.getReader({ mode: "byob" });
    let buf = new Uint8Array(PIPE_CHUNK);
    try {
      for (;;) {
        const { value, done } = await reader.read(buf);
        if (done) break;
        splitter.push(value, onLine);
        buf = new Uint8Array(value.buffer);
      }
    } catch {
      /* the process is gone */
    } finally {
      reader.releaseLock();
    }
    splitter.end(onLine);
  }

  #onStderrLine(raw: string): void {
    // Only the kept part is escaped: a flood of long lines costs the tail nothing.
    const head = raw.length > 500 ? escapeControl(raw.slice(0, 500)) + "…" : escapeControl(raw);
    this.#stderrTail.push(head);
    if (this.#stderrTail.length > STDERR_KEEP) this.#stderrTail.shift();
    this.#plugLog.onStderrLine(raw);
  }
}
