/**
 * The entries of a plugin folder that its checksum covers.
 *
 * @module
 */
import { join } from "node:path";
import type { PluginDescriptor } from "../manifest/mod.ts";
import { compareBytes } from "./_bytewise.ts";
import { checksumFilePath } from "./checksum_file.ts";
import { IntegrityError } from "./integrity_error.ts";

/** Default of {@linkcode PluginFilesOptions.maxEntries}. */
export const MAX_PLUGIN_ENTRIES = 10_000;

/** Options of {@linkcode listPluginFiles}. */
export interface PluginFilesOptions {
  /**
   * Most entries walked (files, symlinks and folders, the excluded checksum file included), so
   * that a huge folder fails fast instead of stalling a start. Default:
   * {@linkcode MAX_PLUGIN_ENTRIES}.
   */
  maxEntries?: number;
  /** Stops the walk between folders. Default: none. */
  signal?: AbortSignal;
}

/** One entry a checksum covers. */
export type PluginEntry =
  | {
    /** A regular file: its bytes count. */
    readonly kind: "file";
    /** Path relative to the plugin folder, `/`-separated. */
    readonly path: string;
    /** Absolute path. */
    readonly abs: string;
  }
  | {
    /** A symlink, not followed: the text of its target counts. */
    readonly kind: "symlink";
    /** Path relative to the plugin folder, `/`-separated. */
    readonly path: string;
    /** Absolute path. */
    readonly abs: string;
    /** What `Deno.readLink` returns for it. */
    readonly target: string;
  };

function describeType(info: Deno.FileInfo | undefined): string {
  if (info?.isFifo) return "a FIFO (named pipe)";
  if (info?.isSocket) return "a socket";
  if (info?.isBlockDevice) return "a block device";
  if (info?.isCharDevice) return "a character device";
  return "neither a file, a symlink nor a folder";
}

/**
 * Every entry under the plugin folder, walked without following symlinks, sorted by path
 * (bytewise): regular files and symlinks; folders count by what they hold. Only the checksum
 * file (`<entrypoint>.sha256`, whose strict one-line format cannot be code) is left out:
 * whatever the plugin might load at run time (a computed `import()`, a file without an
 * extension, a hidden file, the manifest itself, which Deno loads as JavaScript when imported)
 * is listed. The manifest is listed as a `file` like any other; `digestPlugin` hashes it with
 * its `security.checksum` value zeroed.
 *
 * @example
 * ```ts
 * const entries = await listPluginFiles(plugin);
 * entries.map((e) => e.path); // ["lib/util.ts", "main.ts"]
 * ```
 *
 * @throws {IntegrityError} `CHECKSUM_FILE_TYPE` naming a FIFO, socket or device in the folder,
 *   `CHECKSUM_TOO_MANY_FILES` past `maxEntries`, `CHECKSUM_READ` when a folder or link cannot
 *   be read
 * @throws {RangeError} when `maxEntries` is not a positive integer
 */
export async function listPluginFiles(
  plugin: Pick<PluginDescriptor, "name" | "dir" | "entrypoint">,
  options: PluginFilesOptions = {},
): Promise<PluginEntry[]> {
  const maxEntries = options.maxEntries ?? MAX_PLUGIN_ENTRIES;
  if (!(Number.isInteger(maxEntries) && maxEntries >= 1)) {
    throw new RangeError(`maxEntries must be a positive integer, got ${maxEntries}`);
  }
  // Only a file or link at this path is left out: a folder there would hide its contents.
  const excluded = new Set([checksumFilePath(plugin)]);
  const readError = (abs: string, what: string, cause: unknown) =>
    new IntegrityError(
      "CHECKSUM_READ",
      `plugin ${plugin.name}: cannot read ${what} ${abs} to hash the plugin folder: ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { plugin: plugin.name, cause, details: { file: abs } },
    );
  const out: PluginEntry[] = [];
  const folders: { abs: string; rel: string }[] = [{ abs: plugin.dir, rel: "" }];
  let seen = 0;
  for (let folder = folders.pop(); folder !== undefined; folder = folders.pop()) {
    options.signal?.throwIfAborted();
    const children: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(folder.abs)) children.push(e);
    } catch (cause) {
      throw readError(folder.abs, "the folder", cause);
    }
    for (const e of children) {
      if (++seen > maxEntries) {
        throw new IntegrityError(
          "CHECKSUM_TOO_MANY_FILES",
          `plugin ${plugin.name}: ${plugin.dir} holds more than ${maxEntries} entries; its ` +
            "checksum covers every file in the plugin folder, so keep data, caches and " +
            "repositories elsewhere (the plugin's ${DATA_DIR}, for instance)",
          { plugin: plugin.name, details: { dir: plugin.dir, maxEntries } },
        );
      }
      const abs = join(folder.abs, e.name);
      const rel = folder.rel === "" ? e.name : `${folder.rel}/${e.name}`;
      if (e.isDirectory) {
        folders.push({ abs, rel });
      } else if (excluded.has(abs) && (e.isFile || e.isSymlink)) {
        continue;
      } else if (e.isFile) {
        out.push({ kind: "file", path: rel, abs });
      } else if (e.isSymlink) {
        let target: string;
        try {
          target = await Deno.readLink(abs);
        } catch (cause) {
          throw readError(abs, "the symlink", cause);
        }
        out.push({ kind: "symlink", path: rel, abs, target });
      } else {
        const info = await Deno.lstat(abs).catch(() => undefined);
        throw new IntegrityError(
          "CHECKSUM_FILE_TYPE",
          `plugin ${plugin.name}: ${abs} is ${describeType(info)}; a plugin checksum covers ` +
            "regular files, symlinks and folders only: remove it from the plugin folder",
          { plugin: plugin.name, details: { file: abs } },
        );
      }
    }
  }
  return out.sort((a, b) => compareBytes(a.path, b.path));
}
