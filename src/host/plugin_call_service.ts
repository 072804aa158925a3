import { getLogger } from "@logtape/logtape";
import { PlugsconcError } from "../errors/mod.ts";
import { PLUGIN_NAME, type PluginTarget } from "../manifest/mod.ts";
import type { RpcHandler, RpcHandlerContext } from "../rpc/mod.ts";
import { type CallContext, PluginCallError, PluginTimeoutError } from "../runtime/mod.ts";
import { RefusalLog } from "./_refusal_log.ts";
import type { CallOptions } from "./call_options.ts";

const log = getLogger(["plugsconc", "host", "plugin-calls"]);

/** Longest chain of plugin calls: `a -> b -> ... ` at most this many plugins. */
export const MAX_CALL_DEPTH = 8;
/** Longest method name a plugin may ask for (the manifest's names are far shorter). */
const MAX_METHOD = 256;

/**
 * The stable codes of {@linkcode PluginCallServiceError}.
 *
 * - `PLUGIN_CALL_NOT_ALLOWED`: the manifest's `capabilities.plugins` does not grant that
 *   plugin and method.
 * - `PLUGIN_CALL_CYCLE`: the target is already in the call's chain (`a -> b -> a`, `a -> a`).
 * - `PLUGIN_CALL_DEPTH`: the chain already has {@linkcode MAX_CALL_DEPTH} plugins.
 * - `PLUGIN_CALL_LIMIT`: the plugin already has the most calls to other plugins in flight.
 * - `PLUGIN_CALL_INVALID_PARAMS`: the request's params are malformed.
 * - `PLUGIN_CALL_FAILED`: the target's handler threw; `details` carry its JSON-RPC `rpcCode`,
 *   `message` and `data`, and the JSON-RPC error's own code is the target's.
 * - `PLUGIN_CALL_ERROR`: the host failed unexpectedly (its logs say why).
 * - `PLUGIN_NOT_FOUND`: the target is not running on this host (not configured, disabled,
 *   refused or not in `security.allowed_plugins`).
 *
 * Any other code is the target pipeline's (`PLUGIN_TIMEOUT`, `PLUGIN_CALL_CANCELLED`,
 * `RATE_LIMITED`, `CIRCUIT_OPEN`, `BULKHEAD_FULL`, `METHOD_NOT_FOUND`, `INVALID_PARAMS`,
 * `PLUGIN_UNAVAILABLE`, `PLUGIN_CRASHED`, ...).
 */
export type PluginCallServiceErrorCode =
  | "PLUGIN_CALL_NOT_ALLOWED"
  | "PLUGIN_CALL_CYCLE"
  | "PLUGIN_CALL_DEPTH"
  | "PLUGIN_CALL_LIMIT"
  | "PLUGIN_CALL_INVALID_PARAMS"
  | "PLUGIN_CALL_FAILED"
  | "PLUGIN_CALL_ERROR"
  | "PLUGIN_NOT_FOUND";

/**
 * A `host/plugins.call` the host refused, or whose target failed, as the calling plugin gets
 * it: a JSON-RPC error whose `data` is `{ code, details }` (the SDK turns it back into an
 * error with that `code`). Nothing of the target beyond what the caller may know (its
 * stderr, the host's paths, the other plugins' names) is in it.
 */
export class PluginCallServiceError extends PlugsconcError {
  /** The JSON-RPC error code sent: the target's for `PLUGIN_CALL_FAILED`, else -32603. */
  readonly rpcCode: number;

  /**
   * @param code the stable code (a {@linkcode PluginCallServiceErrorCode} or the pipeline's)
   * @param message what failed and what to do
   * @param options `details` and the JSON-RPC `rpcCode` (default -32603)
   */
  constructor(
    code: PluginCallServiceErrorCode | string,
    message: string,
    options: { details?: Record<string, unknown>; rpcCode?: number } = {},
  ) {
    super(code, message, { details: options.details });
    this.rpcCode = options.rpcCode ?? -32603;
  }
}

/** What the service needs of the host. */
export interface PluginCaller {
  /** `PluginHost.call`: the target's whole pipeline. */
  call(name: string, method: string, params: unknown, options: CallOptions): Promise<unknown>;
  /** `PluginHost.timeoutFor`: the target method's own timeout. */
  timeoutFor(name: string, method: string): number;
}

/** Options for {@link PluginCallService}. */
export interface PluginCallServiceOptions {
  /** The calling plugin (whose process this service serves). */
  readonly plugin: string;
  /** Its manifest's `capabilities.plugins`. */
  readonly targets: readonly PluginTarget[];
  /** The host that runs the calls. */
  readonly host: PluginCaller;
  /**
   * The caller process's call in flight with that request id (`PluginProcess.callContext`),
   * else the strictest of its calls in flight (an id the plugin left out or made up), or
   * `undefined` when it has none in flight (background work).
   */
  readonly contextOf: (request: unknown) => CallContext | undefined;
  /** Most calls to other plugins this process may have in flight. Default 64. */
  readonly maxInFlight?: number;
}

/**
 * The host side of `host/plugins.call`, one per plugin process. A plugin may call exactly the
 * methods its manifest lists under `capabilities.plugins`; the call runs through the target's
 * whole pipeline (rate limit, breaker, retries, bulkhead, metrics) with what is left of the
 * deadline of the caller's call it is made for, and ends with that call. The caller and the
 * chain come from the host's own records (which process sent it; which of that process's
 * calls it names), never from what the plugin says: a `request` that is not one of its calls
 * in flight gets the strictest of those (all their chains, the earliest deadline, ended with
 * the first of them to end), and only a process with no call in flight gets the chain
 * `[caller]` and the target's own timeout.
 *
 * @example
 * ```ts
 * const calls = new PluginCallService({ plugin: "a", targets, host, contextOf });
 * // handed to PluginProcess.start({ handlers: { ...calls.handlers } })
 * ```
 */
export class PluginCallService {
  readonly #o: PluginCallServiceOptions;
  /** The granted methods, by target. */
  readonly #allowed: ReadonlyMap<string, ReadonlySet<string>>;
  readonly #refusals: RefusalLog;
  readonly #max: number;
  #inFlight = 0;
  /** The JSON-RPC handlers to give the plugin's peer. */
  readonly handlers: Readonly<Record<string, RpcHandler>>;

  /** @param options see {@linkcode PluginCallServiceOptions} */
  constructor(options: PluginCallServiceOptions) {
    this.#o = options;
    this.#max = options.maxInFlight ?? 64;
    if (!Number.isSafeInteger(this.#max) || this.#max < 1) {
      throw new RangeError(`maxInFlight must be an integer >= 1, got ${this.#max}`);
    }
    const allowed = new Map<string, Set<string>>();
    for (const t of options.targets) {
      const set = allowed.get(t.name) ?? new Set();
      for (const m of t.methods) set.add(m);
      allowed.set(t.name, set);
    }
    this.#allowed = allowed;
    this.#refusals = new RefusalLog(log, options.plugin, {
      kind: "plugin_call.refused",
      what: "plugin calls",
    });
    this.handlers = { "host/plugins.call": (p, ctx) => this.#call(p, ctx) };
  }

  async #call(p: unknown, ctx: RpcHandlerContext): Promise<unknown> {
    const { plugin: caller, host } = this.#o;
    const { request, plugin: target, method, params } = parseParams(p);
    const granted = this.#allowed.get(target);
    if (granted === undefined || !granted.has(method)) {
      const grants = [...this.#allowed].flatMap(([n, ms]) => [...ms].map((m) => `${n}.${m}`));
      this.#refusals.log("not granted", { target, method });
      throw new PluginCallServiceError(
        "PLUGIN_CALL_NOT_ALLOWED",
        `plugin ${caller} may not call ${target}.${JSON.stringify(method)}: its manifest's ` +
          "capabilities.plugins " +
          (grants.length === 0 ? "grants no calls" : `grants only ${grants.join(", ")}`) +
          `; to allow it, add { name: ${target}, methods: [${JSON.stringify(method)}] } there`,
        { details: { plugin: caller, target, method, allowed: grants } },
      );
    }
    const inbound = this.#o.contextOf(request);
    const chain = inbound?.chain ?? [caller];
    if (chain.includes(target)) {
      const cycle = [...chain, target].join(" -> ");
      this.#refusals.log("cycle", { target, method, chain });
      throw new PluginCallServiceError(
        "PLUGIN_CALL_CYCLE",
        `plugin ${caller} may not call ${target}.${method}: the call would close a cycle ` +
          `(${cycle}); a plugin's call may not lead back to a plugin already serving it`,
        { details: { plugin: caller, target, method, chain: [...chain, target] } },
      );
    }
    if (chain.length >= MAX_CALL_DEPTH) {
      this.#refusals.log("too deep", { target, method, chain });
      throw new PluginCallServiceError(
        "PLUGIN_CALL_DEPTH",
        `plugin ${caller} may not call ${target}.${method}: the chain ${chain.join(" -> ")} ` +
          `already has ${chain.length} plugins, the most a chain of calls may have`,
        { details: { plugin: caller, target, method, chain, max: MAX_CALL_DEPTH } },
      );
    }
    if (this.#inFlight >= this.#max) {
      throw new PluginCallServiceError(
        "PLUGIN_CALL_LIMIT",
        `plugin ${caller} already has ${this.#max} calls to other plugins in flight; ` +
          "wait for some to finish",
        { details: { plugin: caller, target, method, max: this.#max } },
      );
    }
    // What is left of the caller's deadline, at most the target's own timeout.
    const own = host.timeoutFor(target, method);
    const left = inbound?.deadline === undefined
      ? own
      : Math.floor(inbound.deadline - performance.now());
    const timeoutMs = Math.min(own, left);
    if (timeoutMs < 1) {
      throw new PluginCallServiceError(
        "PLUGIN_TIMEOUT",
        `${target}.${method} was not called: the deadline of ${caller}'s call has passed`,
        { details: { plugin: target, method, timeoutMs: 0 } },
      );
    }
    const signal = inbound === undefined
      ? ctx.signal
      : AbortSignal.any([ctx.signal, inbound.signal]);
    this.#inFlight++;
    try {
      return await host.call(target, method, params, { signal, timeoutMs, chain });
    } catch (e) {
      throw toCaller(e, { caller, target, method, timeoutMs, shortened: timeoutMs < own });
    } finally {
      this.#inFlight--;
    }
  }
}

/** Codes whose message (and details) say nothing the caller may not know. */
const SAFE = new Set([
  "PLUGIN_CALL_CANCELLED",
  "RATE_LIMITED",
  "CIRCUIT_OPEN",
  "BULKHEAD_FULL",
  "INVALID_PARAMS",
]);

/**
 * What the caller gets for a failed call: the target's own error (its JSON-RPC code, message
 * and data) as `PLUGIN_CALL_FAILED`, the pipeline's refusals as they are, and for the rest
 * (crashes with their stderr, start failures with paths, the host's list of plugins) the code
 * and a message without them.
 */
function toCaller(
  e: unknown,
  c: { caller: string; target: string; method: string; timeoutMs: number; shortened: boolean },
): PluginCallServiceError {
  const where = { plugin: c.target, method: c.method };
  if (e instanceof PluginCallError) {
    const message = e.message;
    return new PluginCallServiceError("PLUGIN_CALL_FAILED", message, {
      rpcCode: e.remoteCode,
      details: { ...where, rpcCode: e.remoteCode, data: e.data },
    });
  }
  if (e instanceof PluginTimeoutError) {
    return new PluginCallServiceError(
      "PLUGIN_TIMEOUT",
      `${c.target}.${c.method} did not answer within ${c.timeoutMs} ms and was cancelled` +
        (c.shortened ? ` (what was left of the deadline of ${c.caller}'s call)` : ""),
      { details: { ...where, timeoutMs: c.timeoutMs } },
    );
  }
  if (!(e instanceof PlugsconcError)) {
    log.error("plugin {plugin}: call to {target}.{method} failed: {error}", {
      plugin: c.caller,
      target: c.target,
      method: c.method,
      error: e,
    });
    return new PluginCallServiceError(
      "PLUGIN_CALL_ERROR",
      `${c.target}.${c.method} failed in the host; see its logs`,
      { details: where },
    );
  }
  if (SAFE.has(e.code)) {
    return new PluginCallServiceError(e.code, e.message, { details: { ...e.details, ...where } });
  }
  if (e.code === "METHOD_NOT_FOUND") {
    // Without the target's list of methods: the caller may know only those it was granted.
    return new PluginCallServiceError(
      "METHOD_NOT_FOUND",
      `plugin ${c.target} has no method ${JSON.stringify(c.method)}`,
      { details: where },
    );
  }
  if (e.code === "PLUGIN_NOT_FOUND") {
    return new PluginCallServiceError(
      "PLUGIN_NOT_FOUND",
      `plugin ${c.target} is not running on this host (not configured, disabled, refused, or ` +
        "not in security.allowed_plugins)",
      { details: where },
    );
  }
  return new PluginCallServiceError(
    e.code,
    `${c.target}.${c.method} could not be served (${e.code}); the host's logs say why`,
    { details: where },
  );
}

/** The params of `host/plugins.call`, checked. */
function parseParams(p: unknown): {
  request: unknown;
  plugin: string;
  method: string;
  params: unknown;
} {
  const bad = (why: string) =>
    new PluginCallServiceError(
      "PLUGIN_CALL_INVALID_PARAMS",
      `host/plugins.call: ${why}; send { request?, plugin, method, params? }`,
    );
  if (p === null || typeof p !== "object" || Array.isArray(p)) throw bad("params is not an object");
  const { request, plugin, method, params } = p as Record<string, unknown>;
  if (typeof plugin !== "string" || !PLUGIN_NAME.test(plugin)) {
    throw bad("plugin is not a plugin name");
  }
  if (typeof method !== "string" || method.length === 0 || method.length > MAX_METHOD) {
    throw bad(`method is not a string of 1 to ${MAX_METHOD} characters`);
  }
  if (request !== undefined && typeof request !== "number" && typeof request !== "string") {
    throw bad("request is not a request id");
  }
  return { request, plugin, method, params };
}
