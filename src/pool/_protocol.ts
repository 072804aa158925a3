/**
 * Messages between the pool (main thread) and its workers. Arrays rather than objects, and
 * jobs and results packed flat into one array per message, so that a batch of N trivial jobs
 * costs one structured clone of one array instead of N objects.
 *
 * @module
 */

/** Main -> worker: `[TO_WORKER_DEFINE, key, moduleUrl, exportName]`. */
export const TO_WORKER_DEFINE = 0;
/** Main -> worker: `[TO_WORKER_RUN, ...JOB_FIELDS x N]`. */
export const TO_WORKER_RUN = 1;
/** Main -> worker: `[TO_WORKER_CANCEL, jobId, reason]`. */
export const TO_WORKER_CANCEL = 2;

/** Fields of one job in a RUN message: id, fn key, input, guarded (0/1), attempt. */
export const JOB_FIELDS = 5;

/**
 * Worker -> main: `[FROM_WORKER_RESULTS, startedId, ...RESULT_FIELDS x N]`: results in the
 * order the jobs were sent; `startedId` (or -1) is a guarded job that starts right after them.
 */
export const FROM_WORKER_RESULTS = 0;
/** Worker -> main: `[FROM_WORKER_CRASH, errorData]`: an uncaught error; the worker closes. */
export const FROM_WORKER_CRASH = 1;
/** Worker -> main: `[FROM_WORKER_EXIT, how]`: the job called close() or Deno.exit(). */
export const FROM_WORKER_EXIT = 2;

/** Fields of one result: id, status, value or error data, run time in ms. */
export const RESULT_FIELDS = 4;

/** Result status: the function returned. */
export const STATUS_OK = 0;
/** Result status: it threw (payload: {@linkcode ErrorData}). */
export const STATUS_ERROR = 1;
/** Result status: skipped, it was cancelled before it started. */
export const STATUS_SKIPPED = 2;

/** An error as plain data (what `JobError` is built from). */
export interface ErrorData {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  cause?: ErrorData;
  /** Set by the worker for errors a retry cannot fix (missing export, clone failure). */
  noRetry?: boolean;
}

/** Turns any thrown value into {@linkcode ErrorData} (following `cause`, 8 deep). */
export function toErrorData(error: unknown, depth = 0): ErrorData {
  if (
    error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
  ) {
    const e = error as Error & { code?: unknown };
    const data: ErrorData = {
      name: typeof e.name === "string" ? e.name : "Error",
      message: String(e.message),
    };
    if (typeof e.stack === "string") data.stack = e.stack;
    if (typeof e.code === "string") data.code = e.code;
    if (e.cause !== undefined && depth < 8) data.cause = toErrorData(e.cause, depth + 1);
    return data;
  }
  return { name: "Error", message: String(error) };
}
