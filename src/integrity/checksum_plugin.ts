import { createHash } from "node:crypto";
import { isAbsolute, relative, sep } from "node:path";
import type { PluginDescriptor } from "../manifest/mod.ts";
import type { WorkerPool } from "../pool/mod.ts";
import { HASH_JOB_URL, type HashFileOutput } from "./hash_job.ts";
import { IntegrityError } from "./integrity_error.ts";

/** Options of {@linkcode checksumPlugin} and {@linkcode digestPlugin}. */
export interface ChecksumOptions {
  /** Stops submitting and cancels the hashing jobs. Default: none. */
  signal?: AbortSignal;
  /**
   * Files of this plugin being hashed (or queued in the pool) at once, so that several
   * plugins share the pool's queue. Default: `2 × pool.maxWorkers`.
   */
  concurrency?: number;
  /** Timeout of each file's hashing job, in ms. Default: none. */
  timeoutMs?: number;
}

/** One file of a plugin's digest. */
export interface FileDigest {
  /** Path relative to the plugin folder, `/`-separated. */
  readonly path: string;
  /** SHA-256 of its bytes, lower-case hex. */
  readonly sha256: string;
  readonly size: number;
}

/** A plugin's module-graph digest and the files it covers. */
export interface PluginDigest {
  /** The checksum, lower-case hex (see {@linkcode combineFileDigests}). */
  readonly hex: string;
  /** The files, sorted as they were combined. */
  readonly files: readonly FileDigest[];
}

const encoder = new TextEncoder();

function compareBytes(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return x.length - y.length;
}

/** One line as GNU `sha256sum` prints it (names with `\` or a newline are escaped). */
function sumLine(sha256: string, path: string): string {
  if (!path.includes("\\") && !path.includes("\n")) return `${sha256}  ${path}\n`;
  return `\\${sha256}  ${path.replaceAll("\\", "\\\\").replaceAll("\n", "\\n")}\n`;
}

/**
 * The plugin checksum from its files' digests: the SHA-256 of the lines
 * `<sha256 of the file>  <path relative to the plugin folder>\n`, sorted by path (bytewise,
 * as `LC_ALL=C sort`). That text is exactly what GNU `sha256sum` prints, so a checksum can be
 * reproduced without plugsconc:
 *
 * ```sh
 * cd plugins/cat && sha256sum lib/util.ts main.ts | LC_ALL=C sort -k2 | sha256sum
 * ```
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

/**
 * Hashes the files of a plugin's module graph as pool jobs (in parallel across workers; run
 * several plugins at once and their jobs share the workers) and combines them.
 *
 * Only files inside the plugin folder count: the SDK files the graph may include are the
 * host's, and would change every plugin's checksum on a host upgrade. The manifest is not part
 * of the graph (it holds `security.checksum` itself).
 *
 * @param graphFiles `checkModuleGraph(plugin, ...).files`: absolute, symlink-free paths
 * @throws {IntegrityError} `CHECKSUM_READ` when a file cannot be hashed
 * @throws {RangeError} when no file lies inside the plugin folder
 */
export async function digestPlugin(
  pool: WorkerPool,
  plugin: PluginDescriptor,
  graphFiles: readonly string[],
  options: ChecksumOptions = {},
): Promise<PluginDigest> {
  const files = graphFiles.flatMap((path) => {
    const rel = relative(plugin.dir, path);
    if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return [];
    return [{ abs: path, rel: sep === "/" ? rel : rel.split(sep).join("/") }];
  });
  if (files.length === 0) {
    throw new RangeError(`plugin ${plugin.name}: none of the graph files is in ${plugin.dir}`);
  }
  const concurrency = options.concurrency ?? 2 * pool.maxWorkers;
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) {
    throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  }
  const digests: FileDigest[] = new Array(files.length);
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (next < files.length && !failed) {
      options.signal?.throwIfAborted();
      const i = next++;
      const file = files[i]!;
      try {
        const out = await pool.run<HashFileOutput>({
          module: HASH_JOB_URL,
          fn: "hashFile",
          input: { path: file.abs },
          signal: options.signal,
          timeoutMs: options.timeoutMs,
        });
        digests[i] = { path: file.rel, sha256: out.sha256, size: out.size };
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
  const sorted = digests.sort((a, b) => compareBytes(a.path, b.path));
  return { hex: combineFileDigests(sorted), files: sorted };
}

/**
 * The SHA-256 checksum of a plugin's module graph, lower-case hex: {@linkcode digestPlugin}
 * without the file list.
 *
 * @example
 * ```ts
 * const graph = await checkModuleGraph(plugin, graphOptions);
 * await using pool = new WorkerPool();
 * const hex = await checksumPlugin(pool, plugin, graph.files);
 * await writeChecksumFile(plugin, hex);
 * ```
 */
export async function checksumPlugin(
  pool: WorkerPool,
  plugin: PluginDescriptor,
  graphFiles: readonly string[],
  options: ChecksumOptions = {},
): Promise<string> {
  return (await digestPlugin(pool, plugin, graphFiles, options)).hex;
}
