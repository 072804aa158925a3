/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The worker side of {@linkcode WorkerPool}: imports job modules (once each), runs the jobs
 * it is sent one at a time in the order they came, and sends results back in batches. Not
 * public API.
 *
 * Batching: results of jobs that finish within {@linkcode FLUSH_MS} of each other go back in
 * one message; the batch is sent when the worker runs out of jobs, before a guarded job (one
 * with a signal, timeout or deadline) starts, or after {@linkcode FLUSH_MS}.
 *
 * @module
 */
import {
  type ErrorData,
  FROM_WORKER_CRASH,
  FROM_WORKER_EXIT,
  FROM_WORKER_RESULTS,
  JOB_FIELDS,
  STATUS_ERROR,
  STATUS_OK,
  STATUS_SKIPPED,
  TO_WORKER_CANCEL,
  TO_WORKER_DEFINE,
  TO_WORKER_RUN,
  toErrorData,
} from "./_protocol.ts";
import type { JobContext, JobFunction } from "./types.ts";

/** Longest time a finished result waits for the batch to be sent, in ms. */
const FLUSH_MS = 2;

interface Definition {
  readonly url: string;
  readonly name: string;
  fn?: JobFunction;
  error?: ErrorData;
  loading?: Promise<void>;
}

const definitions = new Map<number, Definition>();
const modules = new Map<string, Promise<Record<string, unknown>>>();
/** Jobs received and not started, JOB_FIELDS slots each, from `head`. */
let queue: unknown[] = [];
let head = 0;
let busy = false;
let out: unknown[] = [FROM_WORKER_RESULTS, -1];
let outTransfer: Transferable[] = [];
let batchStart = 0;
/** Cancel requests for jobs not started yet (cleared whenever the worker is idle). */
const cancelled = new Map<number, unknown>();
/** The job awaiting its promise, if any. */
let current: Context | undefined;

const NEVER = new AbortController().signal;

class Context implements JobContext {
  readonly id: number;
  readonly attempt: number;
  readonly controller: AbortController | undefined;
  readonly start: number;
  constructor(id: number, attempt: number, controller: AbortController | undefined) {
    this.id = id;
    this.attempt = attempt;
    this.controller = controller;
    this.start = performance.now();
  }
  get signal(): AbortSignal {
    return this.controller?.signal ?? NEVER;
  }
  transfer(...objects: Transferable[]): void {
    for (const o of objects) outTransfer.push(o);
  }
}

function flush(): void {
  if (out.length === 2 && out[1] === -1) return;
  const message = out;
  const transfer = outTransfer;
  out = [FROM_WORKER_RESULTS, -1];
  outTransfer = [];
  batchStart = performance.now();
  try {
    self.postMessage(message, transfer.length === 0 ? undefined : { transfer });
  } catch (error) {
    postOneByOne(message, error);
  }
}

/** A result could not be cloned: send each alone, so only the bad ones fail. */
function postOneByOne(message: unknown[], batchError: unknown): void {
  for (let i = 2; i < message.length; i += 4) {
    const one = [
      FROM_WORKER_RESULTS,
      -1,
      message[i],
      message[i + 1],
      message[i + 2],
      message[i + 3],
    ];
    try {
      self.postMessage(one);
    } catch (error) {
      one[3] = STATUS_ERROR;
      one[4] = {
        name: "PoolError",
        code: "POOL_JOB_INVALID",
        message: `the job's result cannot be structured-cloned: ${
          (error as Error)?.message ?? String(batchError)
        }`,
        noRetry: true,
      } satisfies ErrorData;
      self.postMessage(one);
    }
  }
  if (message[1] !== -1) self.postMessage([FROM_WORKER_RESULTS, message[1]]);
}

function load(def: Definition): Promise<void> {
  def.loading ??= (async () => {
    let module = modules.get(def.url);
    if (module === undefined) {
      module = import(def.url) as Promise<Record<string, unknown>>;
      modules.set(def.url, module);
    }
    try {
      const fn = (await module)[def.name];
      if (typeof fn === "function") def.fn = fn as JobFunction;
      else {
        def.error = {
          name: "PoolError",
          code: "POOL_JOB_INVALID",
          message: `job module ${def.url} has no exported function ${JSON.stringify(def.name)}` +
            (fn === undefined ? "" : ` (it is a ${typeof fn})`),
          noRetry: true,
        };
      }
    } catch (error) {
      const data = toErrorData(error);
      def.error = {
        ...data,
        name: "PoolError",
        code: "POOL_JOB_INVALID",
        message: `cannot import job module ${def.url}: ${data.message}`,
        cause: data,
        noRetry: true,
      };
    }
  })();
  return def.loading;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function";
}

function finished(ctx: Context, status: number, payload: unknown): void {
  current = undefined;
  const end = performance.now();
  out.push(ctx.id, status, payload, end - ctx.start);
  if (end - batchStart > FLUSH_MS) flush();
  pump();
}

function pump(): void {
  busy = true;
  while (head < queue.length) {
    const id = queue[head] as number;
    const def = definitions.get(queue[head + 1] as number)!;
    if (def.fn === undefined && def.error === undefined) {
      // The module is not loaded yet: flush what is done, load it, then continue here.
      flush();
      load(def).then(pump);
      return;
    }
    const input = queue[head + 2];
    const guarded = queue[head + 3] === 1;
    const attempt = queue[head + 4] as number;
    queue[head + 2] = undefined;
    head += JOB_FIELDS;
    if (cancelled.size !== 0 && cancelled.has(id)) {
      cancelled.delete(id);
      out.push(id, STATUS_SKIPPED, undefined, 0);
      continue;
    }
    if (def.error !== undefined) {
      out.push(id, STATUS_ERROR, def.error, 0);
      continue;
    }
    if (guarded) {
      // The pool times a guarded job from this notice, so everything before it must be sent.
      out[1] = id;
      flush();
    }
    const ctx = new Context(id, attempt, guarded ? new AbortController() : undefined);
    let value: unknown;
    try {
      value = def.fn!(input, ctx);
    } catch (error) {
      out.push(id, STATUS_ERROR, toErrorData(error), performance.now() - ctx.start);
      continue;
    }
    if (isThenable(value)) {
      current = ctx;
      Promise.resolve(value).then(
        (v) => finished(ctx, STATUS_OK, v),
        (e) => finished(ctx, STATUS_ERROR, toErrorData(e)),
      );
      return;
    }
    const end = performance.now();
    out.push(id, STATUS_OK, value, end - ctx.start);
    if (end - batchStart > FLUSH_MS) flush();
  }
  queue = [];
  head = 0;
  busy = false;
  cancelled.clear();
  flush();
}

self.onmessage = (event: MessageEvent<unknown[]>) => {
  const m = event.data;
  switch (m[0]) {
    case TO_WORKER_RUN:
      for (let i = 1; i < m.length; i++) queue.push(m[i]);
      if (!busy) {
        batchStart = performance.now();
        pump();
      }
      break;
    case TO_WORKER_CANCEL: {
      const id = m[1] as number;
      if (current !== undefined && current.id === id) current.controller?.abort(m[2]);
      else cancelled.set(id, m[2]);
      break;
    }
    case TO_WORKER_DEFINE:
      definitions.set(m[1] as number, { url: m[2] as string, name: m[3] as string });
      break;
  }
};

// A crash (an uncaught error or rejection, e.g. thrown in a job's timer) is reported with its
// stack, then the worker closes; the pool replaces it. The results before it are sent first,
// so the pool can tell which job was running.
function crash(error: unknown): void {
  flush();
  self.postMessage([FROM_WORKER_CRASH, toErrorData(error)]);
  realClose();
}
self.addEventListener("error", (event) => {
  event.preventDefault();
  crash(event.error ?? new Error(event.message));
});
self.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  crash(event.reason);
});

// A job calling close() or Deno.exit() ends the worker without any event on the main side;
// these wrappers tell the pool first.
const realClose = self.close.bind(self);
const realExit = Deno.exit;
self.close = () => {
  flush();
  self.postMessage([FROM_WORKER_EXIT, "close()"]);
  realClose();
};
Object.defineProperty(Deno, "exit", {
  configurable: true,
  writable: true,
  value: (code?: number): never => {
    flush();
    self.postMessage([FROM_WORKER_EXIT, `Deno.exit(${code ?? 0})`]);
    return realExit(code);
  },
});
