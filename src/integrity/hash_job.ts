/**
 * The pool job that hashes one file (loaded inside pool workers). Streaming: the file is read
 * in {@linkcode HASH_CHUNK_BYTES} chunks into one reused buffer, so a large file never sits
 * in memory.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { JobContext } from "../pool/mod.ts";

/** Size of each read. */
export const HASH_CHUNK_BYTES = 256 * 1024;

/** Input of {@linkcode hashFile}. */
export interface HashFileInput {
  /** Absolute path of the file. */
  readonly path: string;
}

/** Output of {@linkcode hashFile}. */
export interface HashFileOutput {
  /** SHA-256 of the file's bytes, lower-case hex (what `sha256sum` prints). */
  readonly sha256: string;
  /** Bytes read. */
  readonly size: number;
}

/**
 * SHA-256 of one regular file, streamed. Stops between chunks when `ctx.signal` aborts. Usable
 * as a pool job (`{ module: HASH_JOB_URL, fn: "hashFile", input: { path } }`) or called
 * directly.
 *
 * @throws {Deno.errors.NotFound | Deno.errors.PermissionDenied} when the file cannot be read
 * @throws {TypeError} when the path is not a regular file (a device would never end)
 */
export async function hashFile(
  input: HashFileInput,
  ctx?: Pick<JobContext, "signal">,
): Promise<HashFileOutput> {
  const file = await Deno.open(input.path, { read: true });
  try {
    if (!(await file.stat()).isFile) {
      throw new TypeError(`${input.path} is not a regular file`);
    }
    const hash = createHash("sha256");
    const buffer = new Uint8Array(HASH_CHUNK_BYTES);
    let size = 0;
    for (;;) {
      ctx?.signal.throwIfAborted();
      const n = await file.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
      size += n;
    }
    return { sha256: hash.digest("hex"), size };
  } finally {
    file.close();
  }
}

/** The URL of this module, for pool jobs. */
export const HASH_JOB_URL: string = import.meta.url;
