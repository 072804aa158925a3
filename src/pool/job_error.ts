/**
 * A job's error in its three forms: {@linkcode ErrorData} inside the pool, {@linkcode JobError}
 * in a result, and a thrown `Error` (what `run()` rejects with).
 *
 * @module
 */
import type { ErrorData } from "./_protocol.ts";
import { PoolError, type PoolErrorCode } from "./pool_error.ts";
import type { Job, JobError, JobResult } from "./types.ts";

/** Rebuilds a throwable Error from {@linkcode JobError} data (name, message, stack, cause). */
export function jobErrorToError(error: JobError): Error {
  const e = new Error(error.message, error.cause ? { cause: jobErrorToError(error.cause) } : {});
  e.name = error.name;
  if (error.stack !== undefined) e.stack = error.stack;
  if (error.code !== undefined) (e as Error & { code?: string }).code = error.code;
  return e;
}

/** The {@linkcode JobError} of a result, from the pool's error data (without `noRetry`). */
export function toJobError(data: ErrorData): JobError {
  const error: {
    name: string;
    message: string;
    stack?: string;
    code?: string;
    cause?: JobError;
  } = { name: data.name, message: data.message };
  if (data.stack !== undefined) error.stack = data.stack;
  if (data.code !== undefined) error.code = data.code;
  if (data.cause !== undefined) error.cause = toJobError(data.cause);
  return error;
}

/** A {@linkcode PoolError} as error data; it shows the stack of its `cause`, if any. */
export function poolErrorData(code: PoolErrorCode, message: string, cause?: ErrorData): ErrorData {
  const data: ErrorData = { name: "PoolError", code, message };
  if (cause !== undefined) {
    data.cause = cause;
    if (cause.stack !== undefined) data.stack = cause.stack;
  }
  return data;
}

/** The error `run()` throws for a result that is not `succeeded`. */
export function resultToError(result: JobResult<unknown>, job: Job<unknown>): unknown {
  const error = result.error ?? { name: "Error", message: "unknown failure" };
  const byPool = error.name === "PoolError" &&
    (error.code === "POOL_SHUTDOWN" || error.code === "POOL_TERMINATED");
  if (result.status === "cancelled" && result.reason !== undefined) {
    if (!byPool || result.reason instanceof PoolError) return result.reason;
  }
  const url = typeof job.module === "string" ? job.module : job.module.href;
  const where = `${job.fn ?? "default"} of ${url}`;
  const known: readonly string[] = [
    "POOL_TIMEOUT",
    "POOL_DEADLINE",
    "POOL_WORKER_CRASHED",
    "POOL_JOB_INVALID",
    "POOL_SHUTDOWN",
    "POOL_TERMINATED",
  ];
  const details = {
    jobId: result.id,
    module: url,
    fn: job.fn ?? "default",
    attempts: result.attempts,
  };
  if (error.name === "PoolError" && error.code !== undefined && known.includes(error.code)) {
    return new PoolError(error.code as PoolErrorCode, error.message, {
      cause: byPool
        ? result.reason
        : error.cause === undefined
        ? undefined
        : jobErrorToError(error.cause),
      details,
    });
  }
  return new PoolError(
    "POOL_JOB_FAILED",
    `job ${where} failed after ${result.attempts} attempt(s): ${error.name}: ${error.message}`,
    { cause: jobErrorToError(error), details },
  );
}
