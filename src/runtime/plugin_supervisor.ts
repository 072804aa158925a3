import type { EndpointCallOptions } from "./endpoint.ts";
import { getLogger } from "@logtape/logtape";
import type { PluginDefaults } from "../config/mod.ts";
import { PluginUnavailableError, stderrSummary } from "./plugin_errors.ts";
import type { PluginEndpoint } from "./endpoint.ts";
import type { ExitInfo, PluginProcess } from "./plugin_process.ts";
import type { StreamCallOptions } from "./plugin_streams.ts";

/**
 * Supervisor states (DESIGN §6): `stopped -> starting -> ready -> draining -> stopped`, and
 * `crashed -> backoff -> starting` within the restart budget, then `failed`.
 */
export type PluginState =
  | "stopped"
  | "starting"
  | "ready"
  | "draining"
  | "crashed"
  | "backoff"
  | "failed";

/** Restart budget and backoff. */
export type RestartPolicy = PluginDefaults["restart"];

/** Options for {@link PluginSupervisor}. */
export interface PluginSupervisorOptions {
  /** Plugin name. */
  readonly name: string;
  /** Starts one process and resolves once it is ready (handshake done). */
  readonly launch: (signal: AbortSignal) => Promise<PluginProcess>;
  /** Restart budget: at most `max_restarts` per `window_ms`, backoff doubling. */
  readonly restart: RestartPolicy;
  /** Grace period per stop step. */
  readonly stopGraceMs: number;
  /** Called on every state change. */
  readonly onStateChange?: (
    state: PluginState,
    detail: { error?: unknown; restarts: number },
  ) => void;
}

/**
 * Keeps one plugin process running: starts it, restarts it after a crash with exponential
 * backoff inside a restart budget, then gives up (`failed`). It is the local
 * {@linkcode PluginEndpoint}: the pipeline waits for a restart with `whenReady`, then calls.
 */
export class PluginSupervisor implements PluginEndpoint, AsyncDisposable {
  readonly #o: PluginSupervisorOptions;
  readonly #log = getLogger(["plugsconc", "supervisor"]);
  readonly #life = new AbortController();
  #state: PluginState = "stopped";
  #process: PluginProcess | undefined;
  #restartTimes: number[] = [];
  #restarts = 0;
  #lastError: unknown;
  #backoffTimer: ReturnType<typeof setTimeout> | undefined;
  #waiters = new Set<{ resolve(): void; reject(e: unknown): void }>();
  #stopping: Promise<void> | undefined;
  #restarting: Promise<void> | undefined;

  /** @param options see {@link PluginSupervisorOptions} */
  constructor(options: PluginSupervisorOptions) {
    this.#o = options;
  }

  /** The current state. */
  get state(): PluginState {
    return this.#state;
  }

  /** The running process, when there is one. */
  get process(): PluginProcess | undefined {
    return this.#process;
  }

  /** How many times it was restarted after a crash. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The error that caused the last crash or failure. */
  get lastError(): unknown {
    return this.#lastError;
  }

  /**
   * Starts the first process. A failure here is not retried: the plugin is `failed` and the
   * error is thrown (a plugin that cannot start once will not start on a retry).
   */
  async start(): Promise<void> {
    if (this.#state !== "stopped") {
      throw new RangeError(`cannot start ${this.#o.name} in state ${this.#state}`);
    }
    this.#setState("starting");
    try {
      this.#adopt(await this.#o.launch(this.#life.signal));
    } catch (e) {
      this.#lastError = e;
      this.#setState("failed", e);
      throw e;
    }
  }

  /**
   * Resolves when the plugin is ready; waits through restarts. Rejects with
   * `PluginUnavailableError` when it is stopped or failed, or `signal` aborts.
   */
  whenReady(signal?: AbortSignal): Promise<PluginProcess> {
    if (this.#state === "ready" && this.#process) return Promise.resolve(this.#process);
    if (this.#state === "failed" || this.#state === "stopped" || this.#state === "draining") {
      return Promise.reject(this.#unavailable());
    }
    return new Promise<PluginProcess>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          cleanup();
          resolve(this.#process!);
        },
        reject: (e: unknown) => {
          cleanup();
          reject(e);
        },
      };
      const onAbort = () => waiter.reject(signal!.reason);
      const cleanup = () => {
        this.#waiters.delete(waiter);
        signal?.removeEventListener("abort", onAbort);
      };
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.add(waiter);
    });
  }

  /** The running process's pid: it changes when the process is replaced. */
  get incarnation(): number | undefined {
    return this.#process?.pid;
  }

  /**
   * Calls `method` on the process running now (no waiting for a restart: see
   * {@linkcode PluginSupervisor.whenReady}). Rejects with `PluginUnavailableError` when it is
   * not `ready`, else as `PluginProcess.call`.
   */
  call(
    method: string,
    params: unknown,
    options: EndpointCallOptions,
  ): Promise<unknown> {
    const proc = this.#process;
    if (proc === undefined || this.#state !== "ready") {
      return Promise.reject(
        new PluginUnavailableError(this.#o.name, this.#state, "it stopped", { method }),
      );
    }
    return proc.call(method, params, options);
  }

  /** Streams `method` on the process running now (see {@linkcode PluginSupervisor.call}). */
  stream(method: string, params: unknown, options: StreamCallOptions): Promise<unknown> {
    const proc = this.#process;
    if (proc === undefined || this.#state !== "ready") {
      return Promise.reject(
        new PluginUnavailableError(this.#o.name, this.#state, "it stopped", { method }),
      );
    }
    return proc.stream(method, params, options);
  }

  /** Sends a notification to the process running now; dropped when it is not `ready`. */
  notify(method: string, params?: unknown): void {
    if (this.#state === "ready") this.#process?.notify(method, params);
  }

  /** Asks the process running now for `$/health`. */
  health(timeoutMs: number): Promise<unknown> {
    const proc = this.#process;
    if (proc === undefined || this.#state !== "ready") return Promise.reject(this.#unavailable());
    return proc.request("$/health", undefined, { timeoutMs });
  }

  /**
   * Stops the plugin: no restarts, drain in-flight calls (up to the grace period), then the
   * process's polite-then-forceful stop. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#life.abort(
        new PluginUnavailableError(this.#o.name, "stopping", "the host is stopping it"),
      );
      clearTimeout(this.#backoffTimer);
      // A restart under way sees the abort, kills the process it is starting and returns.
      await this.#restarting;
      const proc = this.#process;
      if (proc && !proc.exitInfo) {
        this.#setState("draining");
        const deadline = Date.now() + this.#o.stopGraceMs;
        while (proc.inFlight > 0 && Date.now() < deadline && !proc.exitInfo) {
          await new Promise((r) => setTimeout(r, 10));
        }
        await proc.stop(this.#o.stopGraceMs);
      }
      this.#setState(this.#state === "failed" ? "failed" : "stopped");
    })();
    return this.#stopping;
  }

  /**
   * Replaces a process that is running but not well (failed health checks): it is killed,
   * and the crash path restarts it within the restart budget. Calls in flight on it fail
   * with `PluginUnavailableError` (the pipeline retries idempotent ones). No-op unless
   * `ready`.
   */
  async recycle(reason: string): Promise<void> {
    const proc = this.#process;
    if (proc === undefined || this.#state !== "ready" || this.#stopping) return;
    this.#log.warning("plugin {plugin} (pid {pid}) is restarted: {reason}", {
      plugin: this.#o.name,
      pid: proc.pid,
      reason,
    });
    await proc.kill(new PluginUnavailableError(this.#o.name, "restarting", reason));
  }

  /** Same as {@link PluginSupervisor.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  #adopt(proc: PluginProcess): void {
    this.#process = proc;
    this.#setState("ready");
    proc.exited.then((exit) => this.#onExit(proc, exit));
  }

  #onExit(proc: PluginProcess, exit: ExitInfo): void {
    if (proc !== this.#process || this.#stopping || exit.requested) return;
    this.#lastError = exit;
    this.#log.warning("plugin {plugin} exited unexpectedly ({how})", {
      plugin: this.#o.name,
      how: exit.signal ?? `code ${exit.code}`,
      stderr: exit.stderr.slice(-5),
    });
    this.#setState("crashed", exit);
    this.#scheduleRestart();
  }

  #scheduleRestart(): void {
    const { max_restarts, window_ms, initial_backoff_ms, max_backoff_ms } = this.#o.restart;
    const now = Date.now();
    this.#restartTimes = this.#restartTimes.filter((t) => now - t < window_ms);
    if (this.#restartTimes.length >= max_restarts) {
      this.#log.error(
        "plugin {plugin} crashed {count} times within {windowMs} ms; restart budget exhausted, it is failed",
        { plugin: this.#o.name, count: this.#restartTimes.length + 1, windowMs: window_ms },
      );
      this.#setState("failed", this.#lastError);
      return;
    }
    const delay = Math.min(max_backoff_ms, initial_backoff_ms * 2 ** this.#restartTimes.length);
    this.#restartTimes.push(now);
    this.#setState("backoff");
    this.#backoffTimer = setTimeout(() => {
      this.#restarting = this.#restart().finally(() => (this.#restarting = undefined));
    }, delay);
  }

  async #restart(): Promise<void> {
    if (this.#stopping) return;
    this.#setState("starting");
    try {
      const proc = await this.#o.launch(this.#life.signal);
      if (this.#stopping) {
        await proc.stop(this.#o.stopGraceMs);
        return;
      }
      this.#restarts++;
      this.#adopt(proc);
    } catch (e) {
      if (this.#stopping) return;
      this.#lastError = e;
      this.#log.error("plugin {plugin} failed to restart: {error}", {
        plugin: this.#o.name,
        error: e instanceof Error ? e.message : String(e),
      });
      this.#setState("crashed", e);
      this.#scheduleRestart();
    }
  }

  #unavailable(): PluginUnavailableError {
    const why = this.#state === "failed"
      ? `it failed (${
        describeFailure(this.#lastError)
      }); fix it and restart the host, or see plugsconc logs`
      : "it is not running";
    return new PluginUnavailableError(this.#o.name, this.#state, why, { cause: this.#lastError });
  }

  #setState(state: PluginState, error?: unknown): void {
    if (this.#state === state) return;
    this.#state = state;
    this.#o.onStateChange?.(state, { error, restarts: this.#restarts });
    if (state === "ready") {
      for (const w of [...this.#waiters]) w.resolve();
    } else if (state === "failed" || state === "stopped" || state === "draining") {
      const e = this.#unavailable();
      for (const w of [...this.#waiters]) w.reject(e);
    }
  }
}

/** One line for a supervisor's `lastError`: an error's message, or how the process exited. */
export function describeFailure(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (e !== null && typeof e === "object" && "code" in e && "signal" in e) {
    const x = e as ExitInfo;
    const how = x.signal ? `killed by ${x.signal}` : `exit code ${x.code}`;
    const tail = stderrSummary(x.stderr ?? []);
    return tail ? `${how}; last stderr: ${tail}` : how;
  }
  return String(e);
}
