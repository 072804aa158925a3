import { compileSchema, type Validator } from "../schema/json_schema.ts";
import type { MethodHandler } from "./serve.ts";
import { isStreamable } from "./_stream_sender.ts";

/** A handler's result failed its method's `result` schema (sent as JSON-RPC error -32603). */
export class InvalidResultError extends Error {
  /** JSON-RPC "internal error": the plugin, not the caller, is at fault. */
  readonly rpcCode = -32603;
  /** Sent as the error's `data`. */
  readonly data: { name: string; code: string; method: string; problem: string };

  constructor(method: string, problem: string) {
    super(problem);
    this.name = "InvalidResult";
    this.data = { name: "InvalidResult", code: "INVALID_RESULT", method, problem };
  }
}

/**
 * What the host sent in `$/configure`: the plugin's config (`ctx.config`) and the result
 * schemas the SDK checks each result against before sending it.
 */
export class Configuration {
  #config: unknown = undefined;
  #chunks: Readonly<Record<string, unknown>> = {};
  readonly #results = new Map<string, Validator>();
  readonly #onInvalid: (method: string, problem: string) => void;

  /** @param onInvalid logs a refused result in the plugin */
  constructor(onInvalid: (method: string, problem: string) => void) {
    this.#onInvalid = onInvalid;
  }

  /** `plugins.<name>.config` of the host config; `undefined` when the host sent none. */
  get config(): unknown {
    return this.#config;
  }

  /** The chunk schemas the host sent, by method (for streaming). */
  get chunks(): Readonly<Record<string, unknown>> {
    return this.#chunks;
  }

  /** Answers `$/configure {config?, results?, chunks?}`; a schema it cannot compile is an error. */
  configure(params: unknown): { ok: true } {
    const p = (params ?? {}) as { config?: unknown; results?: unknown; chunks?: unknown };
    if (p.results !== undefined && (p.results === null || typeof p.results !== "object")) {
      throw new TypeError("$/configure: results must be an object of schemas by method");
    }
    const compiled = new Map<string, Validator>();
    for (const [method, schema] of Object.entries((p.results ?? {}) as Record<string, unknown>)) {
      compiled.set(method, compileSchema(schema, { root: "result", linearPatterns: false }));
    }
    this.#results.clear();
    for (const [m, v] of compiled) this.#results.set(m, v);
    this.#config = p.config;
    if (p.chunks !== null && typeof p.chunks === "object") {
      this.#chunks = p.chunks as Record<string, unknown>;
    }
    return { ok: true };
  }

  /**
   * `handler`, with its results checked against the method's result schema (once the host
   * sent one). A stream is left to the stream code, which checks its final result.
   */
  checked(method: string, handler: MethodHandler): MethodHandler {
    return (params, ctx) => {
      const result = handler(params, ctx);
      if (this.#results.size === 0) return result;
      const check = this.#results.get(method);
      if (check === undefined) return result;
      if (result instanceof Promise) {
        return result.then((value) => this.#check(method, check, value));
      }
      return this.#check(method, check, result);
    };
  }

  /**
   * `result` if it passes `method`'s result schema (or there is none); a stream's final result
   * is checked here, once its chunks are out.
   *
   * @throws {InvalidResultError}
   */
  checkResult(method: string, result: unknown): unknown {
    const check = this.#results.get(method);
    return check === undefined ? result : this.#check(method, check, result);
  }

  #check(method: string, check: Validator, value: unknown): unknown {
    // A stream (an async iterable or a generator object): its final result is checked later.
    if (isStreamable(value)) return value;
    // What the host receives: `undefined` goes out as null.
    const problem = check(value === undefined ? null : value);
    if (problem === undefined) return value;
    this.#onInvalid(method, problem);
    throw new InvalidResultError(method, problem);
  }
}
