/**
 * Job functions as the workers know them: by a small integer key, each with an estimate of
 * its run time that decides how many of its jobs go to a worker at once.
 *
 * @module
 */
import type { Job } from "./types.ts";

/** The estimate of a function not measured yet: large, so its first jobs go one per worker. */
const UNKNOWN_EST_MS = 1e6;

/** A job module's export, as the workers know it (by a small integer key). */
export interface FnKey {
  readonly key: number;
  readonly url: string;
  readonly name: string;
  /** Estimated run time (ms), learned from results. */
  estMs: number;
  samples: number;
}

/** `<export> of <module URL>`, for messages and logs. */
export function describe(fn: FnKey): string {
  return `${fn.name} of ${fn.url}`;
}

/** Folds a measured run time (of a job that returned or threw) into the estimate. */
export function learn(fn: FnKey, runMs: number): void {
  fn.estMs = fn.samples++ === 0 ? runMs : fn.estMs * 0.8 + runMs * 0.2;
  if (fn.estMs < 0.001) fn.estMs = 0.001;
}

/** The job functions submitted so far, by module URL and export name. */
export class FnKeys {
  readonly #fns = new Map<string, Map<string, FnKey>>();
  #nextKey = 0;

  /**
   * The key of a job's function; a new one the first time.
   *
   * @throws {TypeError} for a `module` that is not an absolute URL, or an `fn` that is not a name
   */
  get(job: Job<unknown>): FnKey {
    const module = job.module;
    const url = typeof module === "string" ? module : module?.href;
    const name = job.fn ?? "default";
    let byName = this.#fns.get(url);
    let fn = byName?.get(name);
    if (fn !== undefined) return fn;
    if (typeof url !== "string") {
      throw new TypeError(`job.module must be a URL or an absolute URL string, got ${url}`);
    }
    if (!URL.canParse(url)) {
      throw new TypeError(
        `job.module must be an absolute URL (e.g. new URL("./job.ts", import.meta.url)), ` +
          `got ${JSON.stringify(url)}`,
      );
    }
    if (typeof name !== "string" || name === "") {
      throw new TypeError(`job.fn must be the name of an export, got ${String(name)}`);
    }
    fn = { key: this.#nextKey++, url, name, estMs: UNKNOWN_EST_MS, samples: 0 };
    if (byName === undefined) this.#fns.set(url, byName = new Map());
    byName.set(name, fn);
    return fn;
  }
}
