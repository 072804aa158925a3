import { createHash } from "node:crypto";
import type { PluginDescriptor } from "../manifest/mod.ts";
import type { WorkerPool } from "../pool/mod.ts";
import { compareBytes } from "./_bytewise.ts";
import { HASH_JOB_URL, type HashFileOutput } from "./hash_job.ts";
import { IntegrityError } from "./integrity_error.ts";
import { listPluginFiles, type PluginEntry, type PluginFilesOptions } from "./plugin_files.ts";

/** Options of {@linkcode checksumPlugin}, {@linkcode digestPlugin} and `verifyPlugin`. */
export interface ChecksumOptions extends PluginFilesOptions {
  /** Stops the walk, stops submitting and cancels the hashing jobs. Default: none. */
  signal?: AbortSignal;
  /**
   * Files of this plugin being hashed (or queued in the pool) at once, so that several
   * plugins share the pool's queue. Default: `2 × pool.maxWorkers`.
   */
  concurrency?: number;
  /** Timeout of each file's hashing job, in ms. Default: none. */
  timeoutMs?: number;
}

/** One entry of a plugin's digest. */
export interface FileDigest {
  /** Path relative to the plugin folder, `/`-separated. */
  readonly path: string;
  /** `file`: its bytes are hashed; `symlink`: the text of its target is. */
  readonly kind: "file" | "symlink";
  /** SHA-256 of its bytes (or of its target's text), lower-case hex. */
  readonly sha256: string;
  /** Bytes hashed. */
  readonly size: number;
}

/** A plugin folder's digest and the entries it covers. */
export interface PluginDigest {
  /** The checksum, lower-case hex (see {@linkcode combineFileDigests}). */
  readonly hex: string;
  /** The entries, sorted as they were combined. */
  readonly files: readonly FileDigest[];
}

const encoder = new TextEncoder();

/** One line as GNU `sha256sum` prints it (names with `\` or a newline are escaped). */
function sumLine(sha256: string, path: string): string {
  if (!path.includes("\\") && !path.includes("\n")) return `${sha256}  ${path}\n`;
  return `\\${sha256}  ${path.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}\n`;
}

/**
 * The plugin checksum from its entries' digests: the SHA-256 of the lines
 * `<sha256>  <path relative to the plugin folder>\n`, sorted by path (bytewise, as
 * `LC_ALL=C sort`). That text is exactly what GNU `sha256sum` prints, so for a folder without
 * symlinks the checksum can be reproduced without plugsconc (GNU find and coreutils). For a
 * manifest without `security.checksum`:
 *
 * ```sh
 * cd plugins/cat && find . -type f ! -path ./main.ts.sha256 \
 *   -printf '%P\0' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum
 * ```
 *
 * With one, its declared value counts as {@linkcode ZERO_CHECKSUM}: run the same command on a
 * copy of the folder whose manifest has the value (its first occurrence) replaced with zeros,
 * e.g. `sed -i "0,/sha256:$HEX/s//sha256:$(printf '0%.0s' $(seq 64))/" manifest.yaml`.
 *
 * A symlink's line carries the SHA-256 of its target's text (`readlink -n <link> | sha256sum`)
 * instead of a file's bytes.
 *
 * @example
 * ```ts
 * combineFileDigests([{ path: "main.ts", sha256: "e3b0c442..." }]);
 * ```
 */
export function combineFileDigests(
  files: Iterable<Pick<FileDigest, "path" | "sha256">>,
): string {
  const sorted = [...files].sort((a, b) => compareBytes(a.path, b.path));
  const hash = createHash("sha256");
  for (const f of sorted) hash.update(sumLine(f.sha256, f.path));
  return hash.digest("hex");
}

/** What the manifest's declared `security.checksum` value is hashed as: `sha256:` and 64 zeros. */
export const ZERO_CHECKSUM = `sha256:${"0".repeat(64)}`;

/** Largest manifest hashed, as the largest one `loadManifest` reads. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/**
 * The bytes a manifest is hashed as: its own bytes, with the first occurrence of the exact text
 * of its declared checksum (`sha256:<hex>`, as parsed from it) replaced with
 * {@linkcode ZERO_CHECKSUM}, since the value cannot hash itself. Nothing is replaced when
 * `declared` is `undefined` or does not occur as such (then the value counts as written, and
 * cannot match). Only that value is neutral: any other edit of the manifest changes the
 * checksum (it may be imported, and run, as JavaScript).
 *
 * @example
 * ```ts
 * manifestHashBytes(bytes, plugin.manifest.security.checksum);
 * ```
 */
export function manifestHashBytes(bytes: Uint8Array, declared: string | undefined): Uint8Array {
  if (declared === undefined) return bytes;
  const needle = encoder.encode(declared);
  const at = indexOfBytes(bytes, needle);
  if (at < 0) return bytes;
  const out = bytes.slice();
  out.set(encoder.encode(ZERO_CHECKSUM).subarray(0, needle.length), at);
  return out;
}

/** Hashes the manifest in-process (it is small): see {@linkcode manifestHashBytes}. */
async function manifestDigest(
  plugin: PluginDescriptor,
  entry: Extract<PluginEntry, { kind: "file" }>,
): Promise<FileDigest> {
  const fail = (why: string, cause?: unknown) =>
    new IntegrityError(
      "CHECKSUM_READ",
      `plugin ${plugin.name}: cannot hash ${entry.abs}: ${why}`,
      { plugin: plugin.name, cause, details: { file: entry.abs } },
    );
  let bytes: Uint8Array;
  try {
    using file = await Deno.open(entry.abs, { read: true });
    if (!(await file.stat()).isFile) throw fail("not a regular file");
    const buffer = new Uint8Array(MAX_MANIFEST_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = await file.read(buffer.subarray(length));
      if (n === null) break;
      length += n;
      if (length > MAX_MANIFEST_BYTES) throw fail(`larger than ${MAX_MANIFEST_BYTES} bytes`);
    }
    bytes = buffer.subarray(0, length);
  } catch (cause) {
    if (cause instanceof IntegrityError) throw cause;
    throw fail((cause as Error)?.message ?? String(cause), cause);
  }
  const hashed = manifestHashBytes(bytes, plugin.manifest.security.checksum);
  const sha256 = createHash("sha256").update(hashed).digest("hex");
  return { path: entry.path, kind: "file", sha256, size: hashed.length };
}

function linkDigest(entry: Extract<PluginEntry, { kind: "symlink" }>): FileDigest {
  const bytes = encoder.encode(entry.target);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return { path: entry.path, kind: "symlink", sha256, size: bytes.length };
}

/**
 * Hashes every entry of a plugin folder ({@linkcode listPluginFiles}: all files and symlinks
 * under `plugin.dir`, symlinks not followed, without `<entrypoint>.sha256`) and combines them.
 * Files are hashed as pool jobs, each streamed (in parallel across workers; run several plugins
 * at once and their jobs share the workers). The manifest is hashed in-process, with its
 * declared `security.checksum` value (`plugin.manifest.security.checksum`) zeroed
 * ({@linkcode manifestHashBytes}): it is covered because a plugin that may read its folder root
 * can `import()` it, and Deno runs a file with an unknown extension as JavaScript.
 *
 * The whole folder counts, not only the static module graph: a plugin that may read a folder
 * of its own can `import()` any file there, under a name no static analysis sees. Code it
 * imports from outside its folder (read grants elsewhere, its `${DATA_DIR}`) is not covered.
 *
 * @throws {IntegrityError} `CHECKSUM_READ` when an entry cannot be read,
 *   `CHECKSUM_FILE_TYPE` for a FIFO, socket or device, `CHECKSUM_TOO_MANY_FILES` past
 *   `options.maxEntries`
 * @throws {RangeError} for a bad `concurrency` or `maxEntries`
 */
export async function digestPlugin(
  pool: WorkerPool,
  plugin: PluginDescriptor,
  options: ChecksumOptions = {},
): Promise<PluginDigest> {
  const concurrency = options.concurrency ?? 2 * pool.maxWorkers;
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  const entries = await listPluginFiles(plugin, options);
  const digests: FileDigest[] = new Array(entries.length);
  const files: { i: number; abs: string; rel: string }[] = [];
  const manifests: Promise<void>[] = [];
  entries.forEach((e, i) => {
    if (e.kind === "symlink") digests[i] = linkDigest(e);
    else if (e.abs === plugin.manifestFile) {
      manifests.push(manifestDigest(plugin, e).then((d) => void (digests[i] = d)));
    } else files.push({ i, abs: e.abs, rel: e.path });
  });
  await Promise.all(manifests);
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (next < files.length && !failed) {
      options.signal?.throwIfAborted();
      const file = files[next++]!;
      try {
        const out = await pool.run<HashFileOutput>({
          module: HASH_JOB_URL,
          fn: "hashFile",
          input: { path: file.abs },
          signal: options.signal,
          timeoutMs: options.timeoutMs,
        });
        digests[file.i] = { path: file.rel, kind: "file", sha256: out.sha256, size: out.size };
      } catch (cause) {
        failed = true;
        if (options.signal?.aborted) throw options.signal.reason;
        const inner = cause instanceof Error && cause.cause instanceof Error ? cause.cause : cause;
        throw new IntegrityError(
          "CHECKSUM_READ",
          `plugin ${plugin.name}: cannot hash ${file.abs}: ${(inner as Error)?.message ?? inner}`,
          { plugin: plugin.name, cause, details: { file: file.abs } },
        );
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, lane));
  // `entries` is sorted by path already, and so is `digests`.
  return { hex: combineFileDigests(digests), files: digests };
}

/**
 * The SHA-256 checksum of a plugin folder, lower-case hex: {@linkcode digestPlugin} without
 * the entry list.
 *
 * @example
 * ```ts
 * await using pool = new WorkerPool();
 * const hex = await checksumPlugin(pool, plugin);
 * await writeChecksumFile(plugin, hex);
 * ```
 */
export async function checksumPlugin(
  pool: WorkerPool,
  plugin: PluginDescriptor,
  options: ChecksumOptions = {},
): Promise<string> {
  return (await digestPlugin(pool, plugin, options)).hex;
}
