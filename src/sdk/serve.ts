import { FRAMING_LP1, JsonRpcPeer, type RpcHandlerContext, type RpcId } from "../rpc/mod.ts";
import { DEFAULT_HANDSHAKE, PROTOCOL_VERSION } from "./handshake.ts";
import { type HostClient, makeHostClient } from "./host_client.ts";
import { type Channel, openChannel } from "./_channel.ts";
import { type Progress, StreamSender } from "./_stream_sender.ts";
export type { Progress } from "./_stream_sender.ts";
import { Configuration } from "./_configure.ts";

/** Log levels a plugin can use; they map to the host's LogTape levels. */
export type PluginLogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

/** A logger whose records reach the host's logs as `$/log` notifications. */
export interface PluginLogger {
  /** Logs `message` with structured `fields` at `level`. */
  log(level: PluginLogLevel, message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** What a method handler gets besides its params. */
export interface HandlerContext {
  /** Aborted when the host cancels the call (timeout, client gone) or the plugin shuts down. */
  readonly signal: AbortSignal;
  /** The request id. */
  readonly id: RpcId;
  /** The method name. */
  readonly method: string;
  /** Logs to the host, tagged with the method. */
  readonly log: PluginLogger;
  /** Host services. */
  readonly host: HostClient;
  /**
   * Sends a chunk when the host streams this call (`host.stream()`); resolves once it is sent,
   * which waits for the host's credit: `await` it. A plain call drops the chunks.
   */
  readonly progress: Progress;
  /**
   * The plugin's `plugins.<name>.config` from the host config, checked against the manifest's
   * `config.schema` (`{}` when only a schema exists); `undefined` when the host sent none.
   */
  readonly config: unknown;
}

/** Serves one method; the return value is the JSON result, a thrown error the JSON-RPC error. */
// deno-lint-ignore no-explicit-any
export type MethodHandler = (params: any, ctx: HandlerContext) => unknown;

/** What `health()` answers; `degraded` and `unhealthy` should carry a message. */
export interface HealthReport {
  status: "healthy" | "degraded" | "unhealthy";
  message?: string;
}

/** Options for {@link serve}. */
export interface ServeOptions {
  /** The methods the plugin offers, by name. */
  methods: Record<string, MethodHandler>;
  /**
   * The plugin's name, sent in `$/ready`: the host refuses to start it under another name (its
   * folder holds another plugin's code). Default: not sent.
   */
  name?: string;
  /** The plugin's version, sent in `$/ready`; the host warns when the manifest says otherwise. */
  version?: string;
  /** Answers the host's health checks. Default: healthy while the plugin answers. */
  health?: () => HealthReport | Promise<HealthReport>;
  /** The handshake cookie, if the manifest sets its own `handshake` values. */
  handshake?: { magic_cookie_key?: string; magic_cookie_value?: string };
  /** Routes `console.*` to the host's logs (stdout belongs to the protocol). Default `true`. */
  captureConsole?: boolean;
  /**
   * `auto`: the protocol runs over the Unix socket the host offers (`PLUGSCONC_SOCKET`), else
   * over stdin/stdout; `stdio`: always stdin/stdout (what the plugin writes to stdout is then
   * protocol, as before sockets existed). Default `auto`.
   */
  transport?: "auto" | "stdio";
}

const encoder = new TextEncoder();
/**
 * The call console output belongs to: the one whose handler is running synchronously, else the
 * only call in flight (after an await there is no telling calls apart without
 * `AsyncLocalStorage`, and importing `node:async_hooks` adds about 8 ms to every plugin's
 * start).
 */
const calls = { running: undefined as RpcId | undefined, inFlight: new Set<RpcId>() };
function currentRequest(): RpcId | undefined {
  if (calls.running !== undefined) return calls.running;
  if (calls.inFlight.size === 1) return calls.inFlight.values().next().value;
  return undefined;
}

function cookieMatches(key: string, value: string): boolean {
  // Query first: reading an env var without permission would prompt on a terminal.
  if (Deno.permissions.querySync({ name: "env", variable: key }).state !== "granted") return false;
  return Deno.env.get(key) === value;
}

function formatArgs(args: unknown[]): string {
  return args.map((a) => typeof a === "string" ? a : Deno.inspect(a, { colors: false, depth: 6 }))
    .join(" ");
}

/**
 * Runs a plugin: answers the host's JSON-RPC requests on stdin/stdout until stdin closes or
 * the host sends `$/shutdown`. Run directly (without the host), it prints one line saying how
 * to run it and exits 1.
 *
 * @example
 * ```ts
 * import { serve } from "plugsconc/sdk";
 *
 * serve({
 *   methods: {
 *     speak: ({ loud }: { loud?: boolean }) => (loud ? "MEOW" : "meow"),
 *   },
 * });
 * ```
 */
export function serve(options: ServeOptions): Promise<void> {
  const key = options.handshake?.magic_cookie_key ?? DEFAULT_HANDSHAKE.magic_cookie_key;
  const value = options.handshake?.magic_cookie_value ?? DEFAULT_HANDSHAKE.magic_cookie_value;
  if (!cookieMatches(key, value)) {
    Deno.stderr.writeSync(encoder.encode(
      "This is a plugsconc plugin; it is started by the host, not directly. " +
        "Run `deno task cli call <plugin> <method>` or `deno task start` instead.\n",
    ));
    Deno.exit(1);
  }
  // Ctrl-C in a terminal signals the whole foreground process group, plugins included; the
  // host decides when a plugin stops ($/shutdown, stdin closing), so the SDK ignores SIGINT
  // as go-plugin's plugins do.
  try {
    Deno.addSignalListener("SIGINT", () => {});
  } catch { /* a platform without SIGINT */ }
  const methodNames = Object.keys(options.methods);
  for (const name of methodNames) {
    if (name.startsWith("$/") || name.startsWith("host/")) {
      throw new RangeError(`method name ${JSON.stringify(name)} is reserved`);
    }
  }
  return openChannel(options.transport ?? "auto").then((channel) =>
    run(options, methodNames, channel)
  );
}

/** Serves `options` over `channel` (see {@linkcode serve}). */
function run(options: ServeOptions, methodNames: string[], channel: Channel): Promise<void> {
  // Whatever way the plugin exits, what the last tick wrote goes out first.
  globalThis.addEventListener("unload", () => {
    try {
      channel.flushSync();
    } catch { /* the host is gone */ }
  });
  // `acceptFrames`: the host may send length-prefixed frames once it has read `$/ready`, which
  // says so (`framing`); what the SDK writes stays NDJSON, which the host's log gate reads.
  const peer = new JsonRpcPeer({
    send: channel.send,
    gatherWrites: channel.gather,
    maxLineBytes: 64 * 1024 * 1024,
    acceptFrames: true,
    onNotification: (method, params) => void streams.onNotification(method, params),
  });
  const streams = new StreamSender(
    (method, params) => void peer.notify(method, params),
    (method) => configuration.chunks[method],
    (method, result) => configuration.checkResult(method, result),
  );
  const shutdown = new AbortController();

  // `request`: the id of the call a handler's record belongs to, so that the host can give
  // it the call's context (the HTTP gateway's request id, ...).
  // Without an explicit `request` (console output), the call whose handler is running.
  const makeLogger = (extra: Record<string, unknown>, explicit?: unknown): PluginLogger => {
    const log = (level: PluginLogLevel, message: string, fields?: Record<string, unknown>) => {
      const request = explicit ?? currentRequest();
      const params = { level, message, fields: { ...extra, ...fields } };
      void peer.notify("$/log", request === undefined ? params : { ...params, request });
    };
    return {
      log,
      debug: (m, f) => log("debug", m, f),
      info: (m, f) => log("info", m, f),
      warn: (m, f) => log("warning", m, f),
      error: (m, f) => log("error", m, f),
    };
  };

  if (options.captureConsole ?? true) {
    const base = makeLogger({ source: "console" });
    const route = (level: PluginLogLevel) => (...args: unknown[]) =>
      base.log(level, formatArgs(args));
    console.log = route("info");
    console.info = route("info");
    console.debug = route("debug");
    console.trace = route("trace");
    console.warn = route("warning");
    console.error = route("error");
    // The rest of the console writes to stdout too: every method goes to $/log, so nothing a
    // plugin's code (or a library it bundles) prints can corrupt the protocol.
    console.dir = console.dirxml = (...args: unknown[]) => base.log("info", formatArgs(args));
    console.table = (data: unknown) => base.log("info", formatArgs([data]));
    console.assert = (cond?: boolean, ...args: unknown[]) => {
      if (!cond) base.log("error", `Assertion failed${args.length ? `: ${formatArgs(args)}` : ""}`);
    };
    const counts = new Map<string, number>();
    console.count = (label = "default") => {
      const n = (counts.get(label) ?? 0) + 1;
      counts.set(label, n);
      base.log("info", `${label}: ${n}`);
    };
    console.countReset = (label = "default") => void counts.delete(label);
    const timers = new Map<string, number>();
    console.time = (label = "default") => void timers.set(label, performance.now());
    const elapsed = (label: string, end: boolean, args: unknown[]) => {
      const t = timers.get(label);
      if (t === undefined) return base.log("warning", `Timer "${label}" does not exist`);
      if (end) timers.delete(label);
      base.log(
        "info",
        `${label}: ${(performance.now() - t).toFixed(3)}ms ${formatArgs(args)}`.trimEnd(),
      );
    };
    console.timeLog = (label = "default", ...args: unknown[]) => elapsed(label, false, args);
    console.timeEnd = (label = "default") => elapsed(label, true, []);
    console.group = console.groupCollapsed = (...args: unknown[]) => {
      if (args.length > 0) base.log("info", formatArgs(args));
    };
    console.groupEnd = () => {};
  }

  // `$/configure`: config for ctx.config, result schemas each result is checked against.
  const configuration = new Configuration((method, problem) =>
    makeLogger({ method, source: "sdk" }).error(`result refused: ${problem}`)
  );
  peer.handle("$/configure", (params) => configuration.configure(params));
  for (const name of methodNames) {
    const handler = configuration.checked(name, options.methods[name]!);
    peer.handle(name, (params, rpc: RpcHandlerContext) => {
      const signal = AbortSignal.any([rpc.signal, shutdown.signal]);
      const outer = calls.running;
      calls.running = rpc.id;
      calls.inFlight.add(rpc.id);
      let result: unknown;
      let host: HostClient | undefined;
      try {
        // A streamed call (`$/stream` came first) pumps what the handler returns as chunks.
        result = streams.run(rpc.id, rpc.method, signal, (progress) =>
          handler(params, {
            signal,
            id: rpc.id,
            method: rpc.method,
            log: makeLogger({ method: rpc.method }, rpc.id),
            // Made on first use: most calls never ask the host for anything.
            get host() {
              return host ??= makeHostClient(peer, signal, rpc.id);
            },
            progress,
            config: configuration.config,
          }));
      } catch (e) {
        calls.inFlight.delete(rpc.id);
        withErrorName(e);
      } finally {
        calls.running = outer;
      }
      if (!(result instanceof Promise)) {
        calls.inFlight.delete(rpc.id);
        return result;
      }
      const done = () => calls.inFlight.delete(rpc.id);
      return result.then((value) => (done(), value), (e) => (done(), withErrorName(e)));
    });
  }
  peer.handle(
    "$/health",
    async () => options.health ? await options.health() : { status: "healthy" },
  );
  peer.handle("$/shutdown", () => {
    shutdown.abort(new Error("the plugin is shutting down"));
    // Exit once the response (written at the end of this tick) is out.
    setTimeout(() => void channel.flush().finally(() => Deno.exit(0)), 0);
    return { ok: true };
  });

  peer.notify("$/ready", {
    protocol: PROTOCOL_VERSION,
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.version === undefined ? {} : { version: options.version }),
    methods: methodNames,
    framing: [FRAMING_LP1],
    features: ["stream", "configure"],
    ...(channel.transport === undefined ? {} : { transport: channel.transport }),
  });
  return channel.read(peer).then(async () => {
    peer.close(new Error("the host closed the connection"));
    await channel.flush();
    Deno.exit(0); // the unload listener writes what is pending
  });
}

/** Rethrows `e` with its class name in `data.name`, so the host can tell NotCapable apart. */
function withErrorName(e: unknown): never {
  if (e instanceof Error && !("data" in e)) {
    Object.assign(e, { data: { name: e.name } });
  }
  throw e;
}
