import { basename, dirname, join } from "node:path";
import type { PluginDescriptor } from "../manifest/mod.ts";
import { IntegrityError } from "./integrity_error.ts";

const HEX64 = /^[0-9a-f]{64}$/;
const MAX_BYTES = 4096;

/** `<entrypoint>.sha256`, e.g. `/srv/plugins/cat/main.ts.sha256`. */
export function checksumFilePath(plugin: Pick<PluginDescriptor, "entrypoint">): string {
  return `${plugin.entrypoint}.sha256`;
}

/** A checksum file that was read. */
export interface ChecksumFile {
  /** Its path. */
  readonly path: string;
  /** The checksum it holds, lower-case hex. */
  readonly hex: string;
}

/**
 * Parses a checksum file's text: one line `<64 hex digits>  <name>` (`sha256sum` style; a
 * `*` instead of the second space is accepted), where `<name>` must be the entrypoint's file
 * name. A trailing newline is optional.
 *
 * @param text the file's content
 * @param expectedName the entrypoint's file name, e.g. `main.ts`
 * @param where the file, for messages
 * @throws {IntegrityError} `CHECKSUM_FORMAT` naming the file and what is wrong
 */
export function parseChecksumFile(text: string, expectedName: string, where: string): string {
  const lines = text.replace(/\r?\n$/, "").split(/\r?\n/);
  const fail = (why: string): never => {
    throw new IntegrityError(
      "CHECKSUM_FORMAT",
      `${where}: ${why}; expected one line "<64 hex digits>  ${expectedName}" ` +
        "(run `plugsconc plugins checksum <name>` to write it)",
      { details: { file: where } },
    );
  };
  if (lines.length !== 1 || lines[0] === "") fail(`expected 1 line, found ${lines.length}`);
  const match = /^([0-9A-Fa-f]+) [ *](.*)$/.exec(lines[0]!);
  if (match === null) return fail("the line is not `<hex>  <file name>`");
  const hex = match[1]!.toLowerCase();
  if (!HEX64.test(hex)) fail(`the digest has ${hex.length} hex digits, not 64`);
  if (match[2] !== expectedName) {
    fail(
      `it names ${JSON.stringify(match[2])}, not the entrypoint ${JSON.stringify(expectedName)}`,
    );
  }
  return hex;
}

/**
 * Reads `<entrypoint>.sha256`; `undefined` when there is none.
 *
 * @throws {IntegrityError} `CHECKSUM_FORMAT` when it is malformed or larger than 4 KiB
 */
export async function readChecksumFile(
  plugin: Pick<PluginDescriptor, "name" | "entrypoint">,
): Promise<ChecksumFile | undefined> {
  const path = checksumFilePath(plugin);
  let bytes: Uint8Array;
  try {
    using file = await Deno.open(path, { read: true });
    bytes = new Uint8Array(MAX_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = await file.read(bytes.subarray(length));
      if (n === null) break;
      length += n;
      if (length > MAX_BYTES) {
        throw new IntegrityError(
          "CHECKSUM_FORMAT",
          `${path}: larger than ${MAX_BYTES} bytes; a checksum file is one line`,
          { plugin: plugin.name, details: { file: path } },
        );
      }
    }
    bytes = bytes.subarray(0, length);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new IntegrityError("CHECKSUM_FORMAT", `${path}: not UTF-8 text`, {
      plugin: plugin.name,
      cause,
      details: { file: path },
    });
  }
  try {
    return { path, hex: parseChecksumFile(text, basename(plugin.entrypoint), path) };
  } catch (e) {
    if (e instanceof IntegrityError) {
      throw new IntegrityError(e.code, e.message, { plugin: plugin.name, details: e.details });
    }
    throw e;
  }
}

/**
 * Writes `<entrypoint>.sha256` as `<hex>  <entrypoint file name>\n` (atomically: a temp file
 * in the same folder, then a rename) and returns its path and text.
 *
 * Note that `hex` is the plugin folder's checksum (`checksumPlugin`), not the entrypoint
 * file's own, so `sha256sum -c` does not apply to it.
 *
 * @throws {RangeError} when `hex` is not 64 lower-case hex digits
 */
export async function writeChecksumFile(
  plugin: Pick<PluginDescriptor, "entrypoint">,
  hex: string,
): Promise<{ path: string; text: string }> {
  if (!HEX64.test(hex)) throw new RangeError(`not a SHA-256 hex digest: ${JSON.stringify(hex)}`);
  const path = checksumFilePath(plugin);
  const text = `${hex}  ${basename(plugin.entrypoint)}\n`;
  const tmp = join(dirname(path), `.${basename(path)}.${crypto.randomUUID()}.tmp`);
  try {
    await Deno.writeTextFile(tmp, text, { createNew: true });
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  return { path, text };
}
