/**
 * Job functions for the pool's tests and benchmark; loaded inside pool workers.
 *
 * @module
 */
import type { JobContext } from "./types.ts";

/** Returns its input. The trivial job of the benchmark. */
export function echo(input: unknown): unknown {
  return input;
}

/** Squares a number and says which worker did it and in which attempt. */
export function square(input: number, ctx: JobContext): { value: number; worker: string } {
  return { value: input * input, worker: self.name + ":" + ctx.attempt };
}

/** Sleeps `ms`, then returns `value`; honours the signal. */
export function sleep(
  input: { ms: number; value?: unknown },
  ctx: JobContext,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    ctx.signal.throwIfAborted();
    const timer = setTimeout(() => resolve(input.value ?? input.ms), input.ms);
    ctx.signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(ctx.signal.reason);
    }, { once: true });
  });
}

/** Waits for the signal and returns how the job saw the abort reason. */
export function awaitAbort(
  _input: unknown,
  ctx: JobContext,
): Promise<never> {
  return new Promise((_resolve, reject) => {
    ctx.signal.addEventListener("abort", () => {
      const r = ctx.signal.reason as Error;
      reject(new Error(`job saw abort: ${r?.name}: ${r?.message}`, { cause: r }));
    }, { once: true });
  });
}

/** Busy-loops `ms` without yielding (ignores every signal). */
export function spin(input: { ms: number }): number {
  const end = Date.now() + input.ms;
  let n = 0;
  while (Date.now() < end) n++;
  return n;
}

/** Throws an error with a recognisable message and a custom code. */
export function fail(input: { message: string }): never {
  const e = new Error(input.message) as Error & { code: string };
  e.code = "E_TEST";
  throw e;
}

/** Fails until attempt `succeedOn`, then returns the attempt number. */
export function flaky(input: { succeedOn: number }, ctx: JobContext): number {
  if (ctx.attempt < input.succeedOn) throw new Error(`attempt ${ctx.attempt} failed`);
  return ctx.attempt;
}

/** Throws from a timer, after returning a promise that never settles: crashes the worker. */
export function crashInTimer(): Promise<never> {
  setTimeout(() => {
    throw new Error("uncaught in a timer");
  }, 1);
  return new Promise(() => {});
}

/** Closes its own worker. */
export function closeSelf(): Promise<never> {
  self.close();
  return new Promise(() => {});
}

/** Returns a function: the result cannot be structured-cloned. */
export function uncloneable(): unknown {
  return { f: () => 1 };
}

/** Sums the bytes of a transferred buffer; transfers back a new one. */
export function sumBytes(input: { buffer: ArrayBuffer }, ctx: JobContext): ArrayBuffer {
  const bytes = new Uint8Array(input.buffer);
  let sum = 0;
  for (const b of bytes) sum += b;
  const out = new Uint32Array([sum]).buffer;
  ctx.transfer(out);
  return out;
}

let imports = 0;
imports++;
/** How many times this module was evaluated in this worker (1 if the worker caches it). */
export function importCount(): number {
  return imports;
}

/** Not a function. */
export const notAFunction = 42;

/**
 * Writes `started` to `input.file`, waits for the signal, appends how it saw the reason
 * (`name: message`), then rejects with it.
 */
export async function reportAbort(input: { file: string }, ctx: JobContext): Promise<never> {
  await Deno.writeTextFile(input.file, "started\n");
  const reason = await new Promise<Error>((resolve) => {
    if (ctx.signal.aborted) resolve(ctx.signal.reason);
    ctx.signal.addEventListener("abort", () => resolve(ctx.signal.reason), { once: true });
  });
  await Deno.writeTextFile(input.file, `${reason?.name}: ${reason?.message}\n`, { append: true });
  throw reason;
}

/** Writes `started` to `input.file`, then busy-loops `input.ms` ignoring its signal. */
export function startThenSpin(input: { file: string; ms: number }): number {
  Deno.writeTextFileSync(input.file, "started\n");
  return spin(input);
}

/** Pure CPU work: `n` iterations of integer arithmetic. */
export function work(n: number): number {
  let x = 0;
  for (let i = 0; i < n; i++) x = (x * 31 + i) | 0;
  return x;
}

/** Returns at once, or with `crashAfterMs` crashes the worker that long after it started. */
export function maybeCrash(input: { crashAfterMs?: number }): unknown {
  if (input.crashAfterMs === undefined) return "fine";
  setTimeout(() => {
    throw new Error("uncaught in a timer");
  }, input.crashAfterMs);
  return new Promise(() => {});
}
