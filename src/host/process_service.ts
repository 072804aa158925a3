import { getLogger } from "@logtape/logtape";
import { isAbsolute, join, normalize, resolve } from "node:path";
import { z } from "zod";
import { isInside, type ProcessCapability } from "../manifest/mod.ts";
import type { RpcHandler, RpcHandlerContext } from "../rpc/mod.ts";
import { CHILD_SIGNALS, type ChildInfo, type ProcessResult } from "../sdk/host_client.ts";
import { ProcessServiceError } from "./process_service_error.ts";

const log = getLogger(["plugsconc", "process"]);
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The manifest placeholder for "a path inside the plugin's data folder". */
export const DATA_DIR_ARG = "${DATA_DIR}/*";
/** Refusal records per plugin per {@linkcode REFUSAL_WINDOW_MS}; the rest are counted. */
const REFUSAL_LOGS = 20;
const REFUSAL_WINDOW_MS = 10_000;

/** Options of {@linkcode ProcessService}. */
export interface ProcessServiceOptions {
  /** The plugin the children belong to (named in errors and audit records). */
  readonly plugin: string;
  /** The manifest's `capabilities.process`: what may be run, and whether children may be signalled. */
  readonly capabilities: readonly ProcessCapability[];
  /** Working directory and `HOME` of every child: the plugin's private data folder. */
  readonly cwd: string;
  /**
   * Folders a command may not live in: the plugin may write there (plugin folders, data
   * folders), and a command there would run its own code outside the sandbox.
   * @default [cwd]
   */
  readonly forbiddenRoots?: readonly string[];
  /**
   * The children's environment besides `PATH` and `HOME` (the host's own environment is never
   * passed on); a `PATH` or `HOME` here replaces the default.
   * @default {}
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Programs put in front of the command, e.g. `["/usr/bin/setsid", "/usr/bin/setpriv",
   * "--pdeathsig", "KILL", "--"]`, so that children die with the host.
   * @default []
   */
  readonly prefix?: readonly string[];
  /**
   * Whether each child leads its own process group (the prefix starts with `setsid`): then
   * signals go to the whole group, and what a child leaves running is killed when it exits.
   * @default false
   */
  readonly processGroups?: boolean;
  /**
   * How many children (running, or finished and not yet waited for) the plugin may have.
   * @default 16
   */
  readonly maxChildren?: number;
  /**
   * How many `host/process.*` requests of the plugin may be in progress at once.
   * @default 64
   */
  readonly maxRequests?: number;
  /**
   * Bytes kept of each child's stdout and of its stderr; past that the pipe is closed (the
   * child gets SIGPIPE/EPIPE, as with `| head -c`).
   * @default 1 MiB
   */
  readonly maxOutputBytes?: number;
}

const Argv = {
  command: z.string().min(1).max(4096),
  args: z.array(z.string().max(128 * 1024)).max(1024).default([]),
  stdin: z.string().max(1024 * 1024, "at most 1 Mi characters").optional(),
};
const ExecParams = z.strictObject({
  ...Argv,
  timeout_ms: z.number().int().positive().max(MAX_TIMER_MS).optional(),
});
const SpawnParams = z.strictObject(Argv);
const IdParams = z.strictObject({ id: z.number().int().positive() });
const KillParams = z.strictObject({
  id: z.number().int().positive(),
  signal: z.enum(CHILD_SIGNALS).default("SIGTERM"),
});
const ListParams = z.strictObject({}).optional().nullable();

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

/** Collects at most `max` bytes of a stream; then it stops reading and closes the pipe. */
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
        const kept = value.length > room ? value.subarray(0, room) : value;
        this.#chunks.push(kept);
        this.#size += kept.length;
        if (kept.length < value.length) {
          // Reading on to discard would spend the host's CPU on a child that streams forever.
          this.truncated = true;
          this.cancel();
          return;
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
 * Why a `*` argument is refused, if it is: a leading `-` (an option), `+` (`vim +cmd`,
 * `less +cmd`) or `@` (a response file of options for gcc, javac, ...), or a `:` (`host:path`
 * makes rsync, scp or tar reach another machine).
 */
function wildcardProblem(arg: string): string | undefined {
  if (/^[-+@]/.test(arg)) return `it starts with "${arg[0]}"`;
  if (arg.includes(":")) return `it contains ":"`;
  return undefined;
}

async function realPathOfExisting(path: string): Promise<string> {
  // The longest existing prefix, symlinks resolved, plus the rest as written.
  let head = path;
  const rest: string[] = [];
  for (;;) {
    try {
      return join(await Deno.realPath(head), ...rest.reverse());
    } catch {
      const parent = resolve(head, "..");
      if (parent === head) return path;
      rest.push(head.slice(parent.length + (parent.endsWith("/") ? 0 : 1)));
      head = parent;
    }
  }
}

function shortArg(a: string): string {
  return a.length > 200 ? `${a.slice(0, 200)}...(${a.length} chars)` : a;
}

/** A command line for messages and logs, cut to a readable size. */
function describe(command: string, args: readonly string[]): string {
  const shown = args.slice(0, 16).map((a) => JSON.stringify(shortArg(a)));
  if (args.length > 16) shown.push(`...(${args.length} arguments)`);
  return [JSON.stringify(shortArg(command)), ...shown].join(" ");
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
  readonly #groups = new Set<number>();
  readonly #starting = new Set<Promise<unknown>>();
  readonly #maxChildren: number;
  readonly #maxRequests: number;
  readonly #maxOutput: number;
  #nextId = 1;
  /** Places taken by starts still under way, so that concurrent requests respect the limit. */
  #reserved = 0;
  #requests = 0;
  #open = false;
  #closed = false;
  #refusalWindow = { start: 0, logged: 0, suppressed: 0 };

  /** The JSON-RPC handlers to give the plugin's peer. */
  readonly handlers: Readonly<Record<string, RpcHandler>>;

  /** @param options see {@linkcode ProcessServiceOptions} */
  constructor(options: ProcessServiceOptions) {
    this.#o = options;
    this.#maxChildren = options.maxChildren ?? 16;
    this.#maxRequests = options.maxRequests ?? 64;
    this.#maxOutput = options.maxOutputBytes ?? 1024 * 1024;
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
    const now = Date.now();
    const w = this.#refusalWindow;
    if (now - w.start >= REFUSAL_WINDOW_MS) {
      if (w.suppressed > 0) {
        log.warning("plugin {plugin}: {count} more refused process requests were not logged", {
          plugin: this.#o.plugin,
          count: w.suppressed,
        });
      }
      this.#refusalWindow = { start: now, logged: 0, suppressed: 0 };
    }
    if (this.#refusalWindow.logged < REFUSAL_LOGS) {
      this.#refusalWindow.logged++;
      log.warning("plugin {plugin} was refused: {reason}", {
        plugin: this.#o.plugin,
        reason: message,
        ...fields,
      });
    } else this.#refusalWindow.suppressed++;
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
      const fitted = await this.#fit(grant.args, args);
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

  /** The argv for `args` under one grant's pattern, or why they do not fit it. */
  async #fit(pattern: readonly string[], args: readonly string[]): Promise<string[] | string> {
    if (pattern.length !== args.length) {
      return `${pattern.length} argument(s) expected, ${args.length} given`;
    }
    const out: string[] = [];
    for (const [i, p] of pattern.entries()) {
      const arg = args[i]!;
      if (p === "*") {
        const problem = wildcardProblem(arg);
        if (problem !== undefined) return `argument ${i + 1} ("*") is refused: ${problem}`;
        out.push(arg);
      } else if (p === DATA_DIR_ARG) {
        const path = await this.#dataPath(arg);
        if (path === undefined) {
          return `argument ${i + 1} (${DATA_DIR_ARG}) is not a path inside the data folder`;
        }
        out.push(path);
      } else if (p !== arg) {
        return `argument ${i + 1} must be ${JSON.stringify(p)}`;
      } else out.push(arg);
    }
    return out;
  }

  /** `arg` as an absolute path inside the data folder (symlinks resolved), or undefined. */
  async #dataPath(arg: string): Promise<string | undefined> {
    if (arg === "" || arg.includes("\0")) return undefined;
    const root = await Deno.realPath(this.#o.cwd).catch(() => resolve(this.#o.cwd));
    const path = normalize(isAbsolute(arg) ? arg : join(root, arg));
    const real = await realPathOfExisting(path);
    if (!isInside(path, root) && !isInside(path, resolve(this.#o.cwd))) return undefined;
    return isInside(real, root) ? real : undefined;
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
    await this.#checkCommandFile(command, details);
    // close() or a cancel may have come while we awaited: start nothing then.
    this.#throwIfGone(signal, command, details);
    const [bin, ...pre] = [...(this.#o.prefix ?? []), command];
    let proc: Deno.ChildProcess;
    try {
      proc = new Deno.Command(bin!, {
        args: [...pre, ...argv],
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
        this.#killGroup(proc.pid);
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

  /**
   * The command must be an executable file the plugin cannot change: not in a folder it may
   * write (its code or data folders) and not writable by group or others.
   */
  async #checkCommandFile(command: string, details: Record<string, unknown>): Promise<void> {
    let real: string;
    let info: Deno.FileInfo;
    try {
      real = await Deno.realPath(command);
      info = await Deno.stat(real);
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
    const given = this.#o.forbiddenRoots ?? [this.#o.cwd];
    const roots = [
      ...given,
      ...(await Promise.all(given.map((r) => Deno.realPath(r).catch(() => r)))),
    ];
    const inRoot = roots.find((r) => isInside(real, r) || isInside(command, r));
    const writable = info.mode !== null && (info.mode & 0o022) !== 0;
    if (inRoot !== undefined || writable) {
      this.#refuse(
        `plugin ${this.#o.plugin} may not run ${command}: ${
          inRoot !== undefined
            ? `it is inside ${inRoot}, where plugins' code and data live`
            : "it is writable by group or others"
        }; grant a program installed outside the plugins' reach`,
        { command },
      );
    }
  }

  /** SIGKILLs what is left of a child's process group, if it has one. */
  #killGroup(pid: number): void {
    if (!this.#groups.has(pid)) return;
    try {
      Deno.kill(-pid, "SIGKILL");
    } catch { /* the group is empty */ }
  }

  /** Sends `signal` to a running child (its process group with processGroups). */
  #signal(child: Child, signal: Deno.Signal): boolean {
    if (!child.running) return false;
    if (this.#groups.has(child.pid)) {
      try {
        Deno.kill(-child.pid, signal);
        return true;
      } catch {
        // Just spawned, setsid has not made the group yet: signal the child itself (not yet
        // reaped, so its pid is still its own).
      }
    }
    try {
      child.proc.kill(signal);
      return true;
    } catch {
      return false;
    }
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
    for (const pid of this.#groups) this.#killGroup(pid);
    await Promise.allSettled(children.map((c) => c.done));
    this.#children.clear();
  }

  /** Same as {@linkcode ProcessService.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
