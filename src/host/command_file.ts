import { isInside } from "../manifest/mod.ts";
import { PSEUDO_DIRS, type ResolvedCommand, swappableBy } from "../sandbox/mod.ts";
import { ProcessServiceError } from "./process_service_error.ts";

/** Options of {@linkcode commandFile}. */
export interface CommandFileOptions {
  /** The plugin, for messages. */
  readonly plugin: string;
  /** Folders a command may not live in (where plugins' code and data live). */
  readonly forbiddenRoots: readonly string[];
  /**
   * The commands as the sandbox compiler resolved them when the plugin started; when given, a
   * command must still be the same file (device and inode), and one not in it is refused.
   */
  readonly pins?: readonly ResolvedCommand[];
  /**
   * The request gives the child input on stdin and that needs the operator's word: under
   * strict, what a plugin writes to an interpreter's stdin is a script, so only a command the
   * operator lists (`pin.listed`) may take it.
   * @default false
   */
  readonly stdin?: boolean;
}

/** The file to execute, or why the host refuses to run `command`. */
export type CommandFile =
  | { readonly path: string; readonly pin?: ResolvedCommand }
  | { readonly refused: string };

/**
 * Checks, right before a spawn, the file a granted command names: not a pseudo path
 * (`/proc/self/exe` is the host itself), an executable regular file, not in a folder plugins
 * may write or ship code in, not replaceable by anyone but its owner (the file or a folder
 * above it writable by group or others), and still the file the sandbox compiler identified
 * at start (a symlink retargeted since then is refused). The path to execute is the resolved
 * one, so the link cannot change between this check and the spawn.
 *
 * @throws {ProcessServiceError} `PROCESS_SPAWN_FAILED` when the file is missing or not an
 *   executable file
 */
export async function commandFile(
  command: string,
  options: CommandFileOptions,
): Promise<CommandFile> {
  const pseudo = (p: string) => PSEUDO_DIRS.find((d) => isInside(p, d));
  const head = `plugin ${options.plugin} may not run ${command}`;
  if (pseudo(command) !== undefined) {
    return { refused: `${head}: it lies in ${pseudo(command)}, a pseudo file system` };
  }
  const details = { plugin: options.plugin, command };
  let real: string;
  let info: Deno.FileInfo;
  try {
    real = await Deno.realPath(command);
    info = await Deno.stat(real);
  } catch (cause) {
    throw new ProcessServiceError(
      "PROCESS_SPAWN_FAILED",
      `cannot run ${command} for plugin ${options.plugin}: ${(cause as Error).message}`,
      { cause, details },
    );
  }
  if (pseudo(real) !== undefined) {
    return { refused: `${head}: it resolves to ${real}, in a pseudo file system` };
  }
  if (!info.isFile || (info.mode !== null && (info.mode & 0o111) === 0)) {
    throw new ProcessServiceError(
      "PROCESS_SPAWN_FAILED",
      `cannot run ${command} for plugin ${options.plugin}: it is not an executable file`,
      { details },
    );
  }
  const roots = [
    ...options.forbiddenRoots,
    ...(await Promise.all(options.forbiddenRoots.map((r) => Deno.realPath(r).catch(() => r)))),
  ];
  const inRoot = roots.find((r) => isInside(real, r) || isInside(command, r));
  if (inRoot !== undefined) {
    return {
      refused: `${head}: it is inside ${inRoot}, where plugins' code and data live; grant a ` +
        "program installed outside the plugins' reach",
    };
  }
  const swap = swappableBy(real);
  if (swap !== undefined) {
    return { refused: `${head}: ${swap}, so it could be replaced by another program` };
  }
  const pin = options.pins?.find((p) => p.command === command);
  if (options.pins !== undefined) {
    if (pin === undefined) {
      return {
        refused: `${head}: it could not be identified when the plugin started; restart the ` +
          "plugin once it is installed",
      };
    }
    if (pin.dev !== info.dev || pin.ino !== (info.ino ?? 0)) {
      return {
        refused: `${head}: it now resolves to ${real}, another file than ${pin.real}, which the ` +
          "host checked when the plugin started; restart the plugin to check it again",
      };
    }
  }
  if (options.stdin && pin?.listed !== true) {
    return {
      refused: `plugin ${options.plugin} may not give ${command} input on stdin: under ` +
        "security.policy strict only commands the host operator lists under " +
        "security.process.allow take plugin-chosen input (an interpreter runs it as code)",
    };
  }
  return { path: real, pin };
}
