import { getLogger } from "@logtape/logtape";
import { z } from "zod";
import type { ProcessCapability } from "../manifest/mod.ts";
import type { RpcHandler, RpcHandlerContext } from "../rpc/mod.ts";
import { CHILD_SIGNALS, type ChildInfo, type ProcessResult } from "../sdk/host_client.ts";
import { ProcessServiceError } from "./process_service_error.ts";

const log = getLogger(["plugsconc", "process"]);
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of {@linkcode ProcessService}. */
export interface ProcessServiceOptions {
  /** The plugin the children belong to (named in errors and audit records). */
  readonly plugin: string;
  /** The manifest's `capabilities.process`: what may be run, and whether children may be signalled. */
  readonly capabilities: readonly ProcessCapability[];
  /** Working directory and `HOME` of every child: the plugin's private data folder. */
  readonly cwd: string;
  /**
   * The children's environment besides `PATH` and `HOME` (the host's own environment is never
   * passed on).
   * @default {}
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Programs put in front of the command, e.g. `["/usr/bin/setsid", "/usr/bin/setpriv",
   * "--pdeathsig", "KILL", "--"]`, so that children die with the host. With `setsid` first, each
   * child leads its own process group and signals reach its whole group.
   * @default []
   */
  readonly prefix?: readonly string[];
  /**
   * How many children (running, or finished and not yet waited for) the plugin may have.
   * @default 16
   */
  readonly maxChildren?: number;
  /**
   * Bytes kept of each child's stdout and of its stderr; the rest is read and dropped.
   * @default 1 MiB
   */
  readonly maxOutputBytes?: number;
}

const Argv = {
  command: z.string().min(1).max(4096),
  args: z.array(z.string().max(128 * 1024)).max(1024).default([]),
  stdin: z.string().optional(),
};
const ExecParams = z.strictObject({
  ...Argv,
  timeout_ms: z.number().int().positive().max(MAX_TIMER_MS).optional(),
});
const SpawnParams = z.strictObject(Argv);
const PidParams = z.strictObject({ pid: z.number().int().positive() });
const KillParams = z.strictObject({
  pid: z.number().int().positive(),
  signal: z.enum(CHILD_SIGNALS).default("SIGTERM"),
});
const ListParams = z.strictObject({}).optional().nullable();

interface Child {
  readonly pid: number;
  readonly command: string;
  readonly args: readonly string[];
  readonly startedAt: number;
  readonly proc: Deno.ChildProcess;
  readonly done: Promise<ProcessResult>;
  running: boolean;
}

/** Collects at most `max` bytes of a stream; the rest is read and dropped. */
class Collector {
  readonly #chunks: Uint8Array[] = [];
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #max: number;
  #size = 0;
  truncated = false;
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>, max: number) {
    this.#reader = stream.getReader();
    this.#max = max;
    this.done = this.#pump();
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) return;
        const room = this.#max - this.#size;
        if (value.length > room) this.truncated = true;
        if (room > 0) {
          const kept = value.length > room ? value.subarray(0, room) : value;
          this.#chunks.push(kept);
          this.#size += kept.length;
        }
      }
    } catch { /* cancelled, or the pipe broke: keep what arrived */ }
  }

  /** Stops reading (a grandchild may hold the pipe open after the child exited). */
  cancel(): void {
    this.#reader.cancel().catch(() => {});
  }

  text(): string {
    const all = new Uint8Array(this.#size);
    let at = 0;
    for (const c of this.#chunks) {
      all.set(c, at);
      at += c.length;
    }
    return new TextDecoder().decode(all);
  }
}

function parse<T>(schema: z.ZodType<T>, params: unknown, op: string): T {
  const result = schema.safeParse(params ?? undefined);
  if (result.success) return result.data;
  const issues = result.error.issues
    .map((i) => `${i.path.length > 0 ? i.path.join(".") : "params"}: ${i.message}`)
    .join("; ");
  throw new ProcessServiceError(
    "PROCESS_INVALID_PARAMS",
    `host/process.${op}: invalid params: ${issues}`,
  );
}

/**
 * Whether `args` fit a manifest pattern: position by position, the same count; `*` stands
 * for one argument that does not start with `-`, so that no option (`--rsh=...`, `-e`) can be
 * slipped in where the manifest expects a file name.
 */
function argsMatch(pattern: readonly string[], args: readonly string[]): boolean {
  if (pattern.length !== args.length) return false;
  return pattern.every((p, i) => p === "*" ? !args[i]!.startsWith("-") : p === args[i]);
}

function describe(command: string, args: readonly string[]): string {
  return [command, ...args].map((a) => JSON.stringify(a)).join(" ");
}

/**
 * The host's process service for one plugin process (DESIGN §4): the plugin has no
 * `--allow-run`, so it asks the host (`host/process.exec|spawn|wait|list|kill`) and the host
 * checks the command path and every argument against the manifest's `capabilities.process`,
 * runs it with a cleared environment in the plugin's data folder, and scopes `list`/`kill` to
 * the children it started for this plugin. Every run and every refusal is logged (category
 * `plugsconc.process`, with the plugin), which is the audit trail.
 *
 * Children are not in the Deno sandbox: a granted command runs with the host's user rights.
 * Disposing kills every child that is still running (its whole process group with `setsid`).
 *
 * @example
 * ```ts
 * await using service = new ProcessService({
 *   plugin: "backup",
 *   capabilities: [{ exec: { command: "/usr/bin/rsync", args: ["-a", "*", "*"] } }],
 *   cwd: "/var/lib/plugsconc/backup",
 * });
 * // handed to PluginProcess.start({ handlers: service.handlers, ... })
 * ```
 */
export class ProcessService implements AsyncDisposable {
  readonly #o: ProcessServiceOptions;
  readonly #children = new Map<number, Child>();
  readonly #maxChildren: number;
  readonly #maxOutput: number;
  readonly #groups: boolean;
  #closed = false;

  /** The JSON-RPC handlers to give the plugin's peer. */
  readonly handlers: Readonly<Record<string, RpcHandler>>;

  /** @param options see {@linkcode ProcessServiceOptions} */
  constructor(options: ProcessServiceOptions) {
    this.#o = options;
    this.#maxChildren = options.maxChildren ?? 16;
    this.#maxOutput = options.maxOutputBytes ?? 1024 * 1024;
    if (!Number.isSafeInteger(this.#maxChildren) || this.#maxChildren < 1) {
      throw new RangeError(`maxChildren must be a positive integer, got ${this.#maxChildren}`);
    }
    if (!Number.isSafeInteger(this.#maxOutput) || this.#maxOutput < 0) {
      throw new RangeError(`maxOutputBytes must be a non-negative integer, got ${this.#maxOutput}`);
    }
    this.#groups = (options.prefix?.[0] ?? "").endsWith("/setsid");
    this.handlers = {
      "host/process.exec": (p, ctx) => this.#exec(p, ctx),
      "host/process.spawn": (p) => this.#spawnChild(p),
      "host/process.wait": (p, ctx) => this.#wait(p, ctx),
      "host/process.list": (p) => this.#list(p),
      "host/process.kill": (p) => this.#kill(p),
    };
  }

  /** The children not yet waited for. */
  get children(): readonly ChildInfo[] {
    return [...this.#children.values()].map((c) => ({
      pid: c.pid,
      command: c.command,
      args: c.args,
      started_at: new Date(c.startedAt).toISOString(),
      running: c.running,
    }));
  }

  async #exec(params: unknown, ctx: RpcHandlerContext): Promise<ProcessResult> {
    const p = parse(ExecParams, params, "exec");
    const child = await this.#start(p.command, p.args, p.stdin);
    let timedOut = false;
    const onAbort = () => this.#signal(child, "SIGKILL");
    ctx.signal.addEventListener("abort", onAbort, { once: true });
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
      this.#children.delete(child.pid);
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

  async #spawnChild(params: unknown): Promise<{ pid: number }> {
    const p = parse(SpawnParams, params, "spawn");
    const child = await this.#start(p.command, p.args, p.stdin);
    return { pid: child.pid };
  }

  async #wait(params: unknown, ctx: RpcHandlerContext): Promise<ProcessResult> {
    const { pid } = parse(PidParams, params, "wait");
    const child = this.#child(pid, "wait");
    const aborted = new Promise<never>((_, reject) => {
      const onAbort = () =>
        reject(
          new ProcessServiceError(
            "PROCESS_CANCELLED",
            `host/process.wait for pid ${pid} was cancelled; the child keeps running`,
            { details: { plugin: this.#o.plugin, pid } },
          ),
        );
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener("abort", onAbort, { once: true });
    });
    const result = await Promise.race([child.done, aborted]);
    this.#children.delete(pid);
    return result;
  }

  #list(params: unknown): { children: readonly ChildInfo[] } {
    parse(ListParams, params, "list");
    return { children: this.children };
  }

  #kill(params: unknown): { pid: number; signal: string; sent: boolean } {
    const { pid, signal } = parse(KillParams, params, "kill");
    if (!this.#o.capabilities.some((c) => "kill" in c && c.kill.includes("children"))) {
      this.#refuse(
        `plugin ${this.#o.plugin} may not signal processes: its manifest has no ` +
          `"kill: [children]" under capabilities.process`,
        { pid, signal },
      );
    }
    const child = this.#child(pid, "kill");
    const sent = child.running && this.#signal(child, signal);
    log.info("plugin {plugin} sent {signal} to its child {pid}", {
      plugin: this.#o.plugin,
      signal,
      pid,
      sent,
    });
    return { pid, signal, sent };
  }

  #child(pid: number, op: string): Child {
    const child = this.#children.get(pid);
    if (child === undefined) {
      throw new ProcessServiceError(
        "PROCESS_NOT_FOUND",
        `host/process.${op}: pid ${pid} is not a child of plugin ${this.#o.plugin} ` +
          "(or it was already waited for)",
        { details: { plugin: this.#o.plugin, pid } },
      );
    }
    return child;
  }

  #refuse(message: string, fields: Record<string, unknown>): never {
    log.warning("plugin {plugin} was refused: {reason}", {
      plugin: this.#o.plugin,
      reason: message,
      ...fields,
    });
    throw new ProcessServiceError("PROCESS_NOT_ALLOWED", message, {
      details: { plugin: this.#o.plugin, ...fields },
    });
  }

  #check(command: string, args: readonly string[]): void {
    const execs = this.#o.capabilities.flatMap((c) => "exec" in c ? [c.exec] : []);
    if (execs.some((e) => e.command === command && argsMatch(e.args, args))) return;
    const sameCommand = execs.filter((e) => e.command === command);
    const why = execs.length === 0
      ? "its manifest grants no process capability"
      : sameCommand.length === 0
      ? `its manifest grants only ${execs.map((e) => e.command).join(", ")}`
      : `the arguments fit none of ${
        sameCommand.map((e) => JSON.stringify(e.args)).join(", ")
      } ("*" is one argument not starting with "-")`;
    this.#refuse(`plugin ${this.#o.plugin} may not run ${describe(command, args)}: ${why}`, {
      command,
      args,
    });
  }

  async #start(
    command: string,
    args: readonly string[],
    stdin: string | undefined,
  ): Promise<Child> {
    const details = { plugin: this.#o.plugin, command };
    if (this.#closed) {
      throw new ProcessServiceError(
        "PROCESS_CANCELLED",
        `plugin ${this.#o.plugin} is stopping; it cannot start processes`,
        { details },
      );
    }
    this.#check(command, args);
    if (this.#children.size >= this.#maxChildren) {
      throw new ProcessServiceError(
        "PROCESS_LIMIT",
        `plugin ${this.#o.plugin} already has ${this.#children.size} children, the most it may ` +
          "have; wait for (host/process.wait) or finish some first",
        { details: { ...details, max: this.#maxChildren } },
      );
    }
    // Checked here because with a prefix in front, a missing command is only setpriv's error.
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(command);
    } catch (cause) {
      throw new ProcessServiceError(
        "PROCESS_SPAWN_FAILED",
        `cannot run ${command} for plugin ${this.#o.plugin}: ${(cause as Error).message}`,
        { cause, details },
      );
    }
    if (!info.isFile || (info.mode !== null && (info.mode & 0o111) === 0)) {
      throw new ProcessServiceError(
        "PROCESS_SPAWN_FAILED",
        `cannot run ${command} for plugin ${this.#o.plugin}: it is not an executable file`,
        { details },
      );
    }
    const [bin, ...pre] = [...(this.#o.prefix ?? []), command];
    let proc: Deno.ChildProcess;
    try {
      proc = new Deno.Command(bin!, {
        args: [...pre, ...args],
        cwd: this.#o.cwd,
        clearEnv: true,
        env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: this.#o.cwd, ...this.#o.env },
        stdin: stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (cause) {
      throw new ProcessServiceError(
        "PROCESS_SPAWN_FAILED",
        `cannot run ${command} for plugin ${this.#o.plugin}: ${(cause as Error).message}`,
        { cause, details },
      );
    }
    if (stdin !== undefined) {
      const writer = proc.stdin.getWriter();
      // A child that exits without reading its input breaks the pipe: not an error of ours.
      writer.write(new TextEncoder().encode(stdin)).then(() => writer.close()).catch(() => {});
    }
    const startedAt = Date.now();
    const out = new Collector(proc.stdout, this.#maxOutput);
    const err = new Collector(proc.stderr, this.#maxOutput);
    const child: Child = {
      pid: proc.pid,
      command,
      args: [...args],
      startedAt,
      proc,
      running: true,
      done: proc.status.then(async (status) => {
        child.running = false;
        // A grandchild can keep the pipes open after the child exited: do not wait for it.
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          Promise.all([out.done, err.done]),
          new Promise((r) => (timer = setTimeout(r, 500))),
        ]);
        clearTimeout(timer);
        out.cancel();
        err.cancel();
        const result: ProcessResult = {
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
          args,
          pid: proc.pid,
          outcome: result.signal ?? `code ${result.code}`,
          ms: result.duration_ms,
        });
        return result;
      }),
    };
    this.#children.set(child.pid, child);
    log.info("plugin {plugin} started {command} (pid {pid})", {
      plugin: this.#o.plugin,
      command,
      args,
      pid: child.pid,
    });
    return child;
  }

  /** Sends `signal` to the child (its process group with `setsid`); false if it is gone. */
  #signal(child: Child, signal: Deno.Signal): boolean {
    if (!child.running) return false;
    try {
      Deno.kill(this.#groups ? -child.pid : child.pid, signal);
      return true;
    } catch {
      try {
        // The group may be gone while the child is not (it left it): signal the child.
        Deno.kill(child.pid, signal);
        return true;
      } catch {
        return false;
      }
    }
  }

  /** Kills every running child (and its group) and waits for them; later requests are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    const children = [...this.#children.values()];
    for (const c of children) this.#signal(c, "SIGKILL");
    await Promise.allSettled(children.map((c) => c.done));
    this.#children.clear();
  }

  /** Same as {@linkcode ProcessService.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
