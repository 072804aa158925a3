import { getLogger } from "@logtape/logtape";
import { auditEvent } from "../audit/mod.ts";
import type { RpcHandler, RpcHandlerContext } from "../rpc/mod.ts";
import type { ChildInfo, ProcessResult } from "../sdk/host_client.ts";
import { Collector } from "./_output_collector.ts";
import { ProcessGroups } from "./_process_groups.ts";
import { RefusalLog } from "./_refusal_log.ts";
import { commandFile } from "./command_file.ts";
import { describe, fitArgs, shortArg } from "./process_args.ts";
import {
  ExecParams,
  IdParams,
  KillParams,
  ListParams,
  parse,
  SpawnParams,
} from "./process_params.ts";
import { ProcessServiceError } from "./process_service_error.ts";
import type { ProcessServiceOptions } from "./process_service_options.ts";

const log = getLogger(["plugsconc", "process"]);
export { DATA_DIR_ARG } from "./process_args.ts";
export type { ProcessServiceOptions } from "./process_service_options.ts";

interface Child {
  readonly id: number;
  readonly pid: number;
  readonly command: string;
  readonly args: readonly string[];
  readonly startedAt: number;
  readonly proc: Deno.ChildProcess;
  readonly done: Promise<ProcessResult>;
  running: boolean;
}

/**
 * The host's process service for one plugin process (DESIGN §4): the plugin has no
 * `--allow-run`, so it asks the host (`host/process.exec|spawn|wait|list|kill`) and the host
 * checks the command path and every argument against the manifest's `capabilities.process`,
 * runs it with a cleared environment in the plugin's data folder, and scopes `list`/`kill` to
 * the children it started for this plugin (by ids it hands out, never raw pids). Every run and
 * every refusal is logged (category `plugsconc.process`, with the plugin): the audit trail.
 *
 * Children are not in the Deno sandbox: a granted command runs with the host's user rights.
 * Requests are refused until {@linkcode ProcessService.open} (the host calls it once the
 * plugin passed its handshake). Disposing kills every child and its process group.
 *
 * @example
 * ```ts
 * await using service = new ProcessService({
 *   plugin: "backup",
 *   capabilities: [{ exec: { command: "/usr/bin/rsync", args: ["-a", "${DATA_DIR}/*", "*"] } }],
 *   cwd: "/var/lib/plugsconc/backup",
 * });
 * // handed to PluginProcess.start({ handlers: service.handlers, ... }), then service.open()
 * ```
 */
export class ProcessService implements AsyncDisposable {
  readonly #o: ProcessServiceOptions;
  readonly #children = new Map<number, Child>();
  /** The process groups of running children (processGroups). */
  readonly #groups = new ProcessGroups();
  readonly #starting = new Set<Promise<unknown>>();
  readonly #maxChildren: number;
  readonly #maxRequests: number;
  readonly #maxOutput: number;
  readonly #dataDir: string;
  #nextId = 1;
  /** Places taken by starts still under way, so that concurrent requests respect the limit. */
  #reserved = 0;
  #requests = 0;
  #open = false;
  #closed = false;
  readonly #refusals: RefusalLog;

  /** The JSON-RPC handlers to give the plugin's peer. */
  readonly handlers: Readonly<Record<string, RpcHandler>>;

  /** @param options see {@linkcode ProcessServiceOptions} */
  constructor(options: ProcessServiceOptions) {
    this.#o = options;
    this.#maxChildren = options.maxChildren ?? 16;
    this.#maxRequests = options.maxRequests ?? 64;
    this.#maxOutput = options.maxOutputBytes ?? 1024 * 1024;
    this.#dataDir = options.dataDir ?? options.cwd;
    this.#refusals = new RefusalLog(log, options.plugin);
    for (
      const [name, value, min] of [
        ["maxChildren", this.#maxChildren, 1],
        ["maxRequests", this.#maxRequests, 1],
        ["maxOutputBytes", this.#maxOutput, 0],
      ] as const
    ) {
      if (!Number.isSafeInteger(value) || value < min) {
        throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`);
      }
    }
    const guard =
      <T>(op: string, fn: (p: unknown, ctx: RpcHandlerContext) => Promise<T> | T) =>
      (p: unknown, ctx: RpcHandlerContext) => this.#guarded(op, () => fn(p, ctx));
    this.handlers = {
      "host/process.exec": guard("exec", (p, ctx) => this.#exec(p, ctx)),
      "host/process.spawn": guard("spawn", (p, ctx) => this.#spawnChild(p, ctx)),
      "host/process.wait": guard("wait", (p, ctx) => this.#wait(p, ctx)),
      "host/process.list": guard("list", (p) => this.#list(p)),
      "host/process.kill": guard("kill", (p) => this.#kill(p)),
    };
  }

  /** Accepts requests from now on (until close). */
  open(): void {
    if (!this.#closed) this.#open = true;
  }

  /** The children not yet waited for. */
  get children(): readonly ChildInfo[] {
    return [...this.#children.values()].map((c) => ({
      id: c.id,
      pid: c.pid,
      command: c.command,
      args: c.args,
      started_at: new Date(c.startedAt).toISOString(),
      running: c.running,
    }));
  }

  async #guarded<T>(op: string, fn: () => Promise<T> | T): Promise<T> {
    const details = { plugin: this.#o.plugin, op };
    if (this.#closed || !this.#open) {
      throw new ProcessServiceError(
        "PROCESS_CANCELLED",
        this.#closed
          ? `plugin ${this.#o.plugin} is stopping; host/process.${op} is refused`
          : `plugin ${this.#o.plugin} has not finished its handshake; host/process.${op} is refused`,
        { details },
      );
    }
    if (this.#requests >= this.#maxRequests) {
      throw new ProcessServiceError(
        "PROCESS_LIMIT",
        `plugin ${this.#o.plugin} already has ${this.#requests} host/process requests in ` +
          "progress, the most it may have",
        { details: { ...details, max: this.#maxRequests } },
      );
    }
    this.#requests++;
    try {
      return await fn();
    } finally {
      this.#requests--;
    }
  }

  async #exec(params: unknown, ctx: RpcHandlerContext): Promise<ProcessResult> {
    const p = parse(ExecParams, params, "exec");
    const child = await this.#start(p.command, p.args, p.stdin, ctx.signal);
    let timedOut = false;
    const onAbort = () => this.#signal(child, "SIGKILL");
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    // A listener added to an aborted signal never runs.
    if (ctx.signal.aborted) onAbort();
    const timer = p.timeout_ms === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      this.#signal(child, "SIGKILL");
    }, p.timeout_ms);
    let result: ProcessResult;
    try {
      result = await child.done;
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener("abort", onAbort);
      this.#forget(child);
    }
    const details = { plugin: this.#o.plugin, command: p.command, pid: child.pid };
    if (timedOut) {
      throw new ProcessServiceError(
        "PROCESS_TIMEOUT",
        `${describe(p.command, p.args)} ran longer than ${p.timeout_ms} ms and was killed`,
        { details: { ...details, timeout_ms: p.timeout_ms } },
      );
    }
    if (ctx.signal.aborted) {
      throw new ProcessServiceError(
        "PROCESS_CANCELLED",
        `${describe(p.command, p.args)} was killed: the request was cancelled`,
        { details },
      );
    }
    return result;
  }

  async #spawnChild(params: unknown, ctx: RpcHandlerContext): Promise<{ id: number; pid: number }> {
    const p = parse(SpawnParams, params, "spawn");
    const child = await this.#start(p.command, p.args, p.stdin, ctx.signal);
    if (ctx.signal.aborted) {
      // Nobody will receive the id: the child would hold a place until the plugin stops.
      this.#signal(child, "SIGKILL");
      this.#forget(child);
      throw new ProcessServiceError(
        "PROCESS_CANCELLED",
        `the request to spawn ${p.command} was cancelled; the child was killed`,
        { details: { plugin: this.#o.plugin, command: p.command, pid: child.pid } },
      );
    }
    return { id: child.id, pid: child.pid };
  }

  async #wait(params: unknown, ctx: RpcHandlerContext): Promise<ProcessResult> {
    const { id } = parse(IdParams, params, "wait");
    const child = this.#child(id, "wait");
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () =>
        reject(
          new ProcessServiceError(
            "PROCESS_CANCELLED",
            `host/process.wait for child ${id} was cancelled; the child keeps running`,
            { details: { plugin: this.#o.plugin, id } },
          ),
        );
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener("abort", onAbort, { once: true });
    });
    try {
      const result = await Promise.race([child.done, aborted]);
      this.#forget(child);
      return result;
    } finally {
      ctx.signal.removeEventListener("abort", onAbort!);
    }
  }

  #list(params: unknown): { children: readonly ChildInfo[] } {
    parse(ListParams, params, "list");
    return { children: this.children };
  }

  #kill(params: unknown): { id: number; signal: string; sent: boolean } {
    const { id, signal } = parse(KillParams, params, "kill");
    if (!this.#o.capabilities.some((c) => "kill" in c && c.kill.includes("children"))) {
      this.#refuse(
        `plugin ${this.#o.plugin} may not signal processes: its manifest has no ` +
          `"kill: [children]" under capabilities.process`,
        { id, signal },
      );
    }
    const child = this.#child(id, "kill");
    const sent = this.#signal(child, signal);
    log.info("plugin {plugin} sent {signal} to its child {pid}", {
      plugin: this.#o.plugin,
      signal,
      id,
      pid: child.pid,
      sent,
    });
    return { id, signal, sent };
  }

  #child(id: number, op: string): Child {
    const child = this.#children.get(id);
    if (child === undefined) {
      throw new ProcessServiceError(
        "PROCESS_NOT_FOUND",
        `host/process.${op}: plugin ${this.#o.plugin} has no child ${id} ` +
          "(ids come from host/process.spawn; a waited-for child is forgotten)",
        { details: { plugin: this.#o.plugin, id } },
      );
    }
    return child;
  }

  #forget(child: Child): void {
    if (this.#children.get(child.id) === child) this.#children.delete(child.id);
  }

  #refuse(message: string, fields: Record<string, unknown>): never {
    // A plugin looping over refused requests must not flood the audit trail.
    this.#refusals.log(message, fields);
    throw new ProcessServiceError("PROCESS_NOT_ALLOWED", message, {
      details: { plugin: this.#o.plugin },
    });
  }

  /**
   * The argv to run for `args` under the first grant they fit; `${DATA_DIR}/*` arguments
   * become the absolute path they name inside the data folder.
   */
  async #check(command: string, args: readonly string[]): Promise<string[]> {
    const execs = this.#o.capabilities.flatMap((c) => "exec" in c ? [c.exec] : []);
    const sameCommand = execs.filter((e) => e.command === command);
    const problems: string[] = [];
    for (const grant of sameCommand) {
      const fitted = await fitArgs(grant.args, args, this.#dataDir);
      if (Array.isArray(fitted)) return fitted;
      problems.push(`${JSON.stringify(grant.args)}: ${fitted}`);
    }
    const why = execs.length === 0
      ? "its manifest grants no process capability"
      : sameCommand.length === 0
      ? `its manifest grants only ${[...new Set(execs.map((e) => e.command))].join(", ")}`
      : `the arguments fit no grant (${problems.join("; ")})`;
    const shownArgs = args.slice(0, 16).map(shortArg);
    this.#refuse(`plugin ${this.#o.plugin} may not run ${describe(command, args)}: ${why}`, {
      command: shortArg(command),
      args: shownArgs,
    });
  }

  async #start(
    command: string,
    args: readonly string[],
    stdin: string | undefined,
    signal: AbortSignal,
  ): Promise<Child> {
    const details = { plugin: this.#o.plugin, command: shortArg(command) };
    // Reserved before the first await: concurrent requests cannot all pass the limit.
    if (this.#children.size + this.#reserved >= this.#maxChildren) {
      throw new ProcessServiceError(
        "PROCESS_LIMIT",
        `plugin ${this.#o.plugin} already has ${this.#maxChildren} children, the most it may ` +
          "have; wait for (host/process.wait) or finish some first",
        { details: { ...details, max: this.#maxChildren } },
      );
    }
    this.#reserved++;
    const starting = this.#spawn(command, args, stdin, signal, details);
    this.#starting.add(starting);
    try {
      return await starting;
    } finally {
      this.#reserved--;
      this.#starting.delete(starting);
    }
  }

  async #spawn(
    command: string,
    args: readonly string[],
    stdin: string | undefined,
    signal: AbortSignal,
    details: Record<string, unknown>,
  ): Promise<Child> {
    const argv = await this.#check(command, args);
    const file = await commandFile(command, {
      plugin: this.#o.plugin,
      forbiddenRoots: this.#o.forbiddenRoots ?? [this.#o.cwd, this.#dataDir],
      pins: this.#o.commands,
      stdin: stdin !== undefined && this.#o.stdinNeedsListing === true,
    });
    if ("refused" in file) this.#refuse(file.refused, { command: shortArg(command) });
    // A new empty folder per child: what one child writes there cannot steer the next.
    const home = this.#o.freshWorkdir
      ? await Deno.makeTempDir({ dir: this.#o.cwd, prefix: "child-" })
      : this.#o.cwd;
    const removeHome = () =>
      home === this.#o.cwd ? undefined : Deno.remove(home, { recursive: true }).catch(() => {});
    // close() or a cancel may have come while we awaited: start nothing then.
    if (this.#closed || signal.aborted) await removeHome();
    this.#throwIfGone(signal, command, details);
    // The resolved file: a symlink retargeted after the check cannot change what runs.
    const [bin, ...pre] = [...(this.#o.prefix ?? []), file.path];
    let proc: Deno.ChildProcess;
    try {
      proc = new Deno.Command(bin!, {
        args: [...pre, ...argv],
        cwd: home,
        clearEnv: true,
        env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: home, ...this.#o.env },
        stdin: stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (cause) {
      await removeHome();
      throw new ProcessServiceError(
        "PROCESS_SPAWN_FAILED",
        `cannot run ${command} for plugin ${this.#o.plugin}: ${(cause as Error).message}`,
        { cause, details },
      );
    }
    if (this.#o.processGroups) this.#groups.add(proc.pid);
    if (stdin !== undefined) {
      const writer = proc.stdin.getWriter();
      // A child that exits without reading its input breaks the pipe: not an error of ours.
      writer.write(new TextEncoder().encode(stdin)).then(() => writer.close()).catch(() => {});
    }
    const startedAt = Date.now();
    const out = new Collector(proc.stdout, this.#maxOutput);
    const err = new Collector(proc.stderr, this.#maxOutput);
    const child: Child = {
      id: this.#nextId++,
      pid: proc.pid,
      command,
      args: argv,
      startedAt,
      proc,
      running: true,
      done: proc.status.then(async (status) => {
        // What the child left running in its group ends with it. Now, while those members keep
        // the group's number taken: later, it could name another program's group.
        this.#groups.kill(proc.pid);
        this.#groups.delete(proc.pid);
        child.running = false;
        // A process outside the group can keep the pipes open: do not wait for it.
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          Promise.all([out.done, err.done]),
          new Promise((r) => (timer = setTimeout(r, 500))),
        ]);
        clearTimeout(timer);
        out.cancel();
        err.cancel();
        await removeHome();
        const result: ProcessResult = {
          id: child.id,
          pid: proc.pid,
          code: status.signal === null ? status.code : null,
          signal: status.signal,
          stdout: out.text(),
          stderr: err.text(),
          stdout_truncated: out.truncated,
          stderr_truncated: err.truncated,
          duration_ms: Date.now() - startedAt,
        };
        log.info("plugin {plugin}: {command} (pid {pid}) ended with {outcome} after {ms} ms", {
          plugin: this.#o.plugin,
          command,
          pid: proc.pid,
          outcome: result.signal ?? `code ${result.code}`,
          ms: result.duration_ms,
        });
        return result;
      }),
    };
    this.#children.set(child.id, child);
    auditEvent({
      kind: "process.exec",
      plugin: this.#o.plugin,
      detail: { command, args: argv.slice(0, 16).map(shortArg), pid: child.pid },
    });
    log.info("plugin {plugin} started {command} (pid {pid})", {
      plugin: this.#o.plugin,
      command,
      args: argv.slice(0, 16).map(shortArg),
      pid: child.pid,
    });
    if (this.#closed || signal.aborted) {
      // Gone between the spawn and here: no request will ever wait for this child.
      this.#signal(child, "SIGKILL");
      if (this.#closed) await child.done;
      this.#forget(child);
      this.#throwIfGone(signal, command, details);
    }
    return child;
  }

  #throwIfGone(signal: AbortSignal, command: string, details: Record<string, unknown>): void {
    if (!this.#closed && !signal.aborted) return;
    throw new ProcessServiceError(
      "PROCESS_CANCELLED",
      this.#closed
        ? `plugin ${this.#o.plugin} is stopping; ${command} was not run`
        : `the request to run ${command} was cancelled before it started`,
      { details },
    );
  }

  /** Sends `signal` to a running child (its process group with processGroups). */
  #signal(child: Child, signal: Deno.Signal): boolean {
    return child.running && this.#groups.signal(child.pid, child.proc, signal);
  }

  /**
   * Waits for starts under way, kills every running child and its process group, and waits
   * for them; later requests are refused.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.#open = false;
    await Promise.allSettled([...this.#starting]);
    const children = [...this.#children.values()];
    for (const c of children) this.#signal(c, "SIGKILL");
    this.#groups.killAll();
    await Promise.allSettled(children.map((c) => c.done));
    this.#children.clear();
  }

  /** Same as {@linkcode ProcessService.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
