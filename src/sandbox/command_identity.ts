import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { isInside } from "../manifest/mod.ts";
import { launcherName } from "./launcher_names.ts";

/**
 * Folders no command may come from: pseudo file systems, where a path names whatever the
 * kernel says at the moment of the exec (`/proc/self/exe` is the program that reads it: the
 * host's own Deno), or devices and sockets.
 */
export const PSEUDO_DIRS: readonly string[] = ["/proc", "/dev", "/sys", "/run"];

/** What a command file is, found by looking at the file rather than at its name. */
export interface CommandIdentity {
  /** The path as the manifest writes it. */
  readonly command: string;
  /** The file it resolves to (symlinks followed). */
  readonly real: string;
  /** Device and inode of the real file: the same file under any name. */
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  /** `elf`: a native binary; `script`: a `#!` script; `other`: anything else. */
  readonly format: "elf" | "script" | "other";
  /** Why it runs code its arguments (or files) name, if it does; in words. */
  readonly launcher?: string;
}

/** Folders searched for the launchers installed on this machine. */
const BIN_DIRS = [
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
  "/lib64",
  "/usr/lib64",
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
];

/** One launcher installed on this machine. */
interface KnownLauncher {
  readonly path: string;
  readonly name: string;
  readonly size: number;
  sha256?: string;
}

interface LauncherIndex {
  readonly at: number;
  readonly extra: string;
  readonly byInode: Map<string, KnownLauncher>;
  readonly bySize: Map<number, KnownLauncher[]>;
}

let index: LauncherIndex | undefined;
/** The index is rebuilt after this long, so a launcher installed later is known too. */
const INDEX_TTL_MS = 60_000;

function inodeKey(info: Deno.FileInfo): string {
  return `${info.dev}:${info.ino}`;
}

/**
 * The launchers installed on this machine (by the names of `LAUNCHER_NAMES` in the
 * usual bin folders) and `extra` programs (the host's own Deno), indexed by inode and by size.
 */
function knownLaunchers(extra: readonly string[]): LauncherIndex {
  const key = extra.join("\0");
  const now = Date.now();
  if (index !== undefined && index.extra === key && now - index.at < INDEX_TTL_MS) return index;
  const byInode = new Map<string, KnownLauncher>();
  const bySize = new Map<number, KnownLauncher[]>();
  const add = (path: string, name: string) => {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(path);
    } catch {
      return;
    }
    if (!info.isFile || byInode.has(inodeKey(info))) return;
    const known: KnownLauncher = { path: Deno.realPathSync(path), name, size: info.size };
    byInode.set(inodeKey(info), known);
    const same = bySize.get(info.size) ?? [];
    same.push(known);
    bySize.set(info.size, same);
  };
  for (const dir of BIN_DIRS) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const e of entries) {
      const name = launcherName(e.name);
      if (name !== undefined) add(join(dir, e.name), name);
    }
  }
  for (const path of extra) add(path, "deno");
  index = { at: now, extra: key, byInode, bySize };
  return index;
}

function sha256File(path: string): string | undefined {
  try {
    return createHash("sha256").update(Deno.readFileSync(path)).digest("hex");
  } catch {
    return undefined;
  }
}

function readHead(path: string): Uint8Array {
  const file = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(256);
    const n = file.readSync(buf) ?? 0;
    return buf.subarray(0, n);
  } finally {
    file.close();
  }
}

/** Options of {@linkcode identifyCommand}. */
export interface IdentifyOptions {
  /**
   * Programs that count as launchers besides those found by name: the host's own Deno binary
   * (`deno eval` runs any code), whatever it is called.
   * @default [Deno.execPath()]
   */
  readonly extraLaunchers?: readonly string[];
}

/**
 * Identifies the file `command` names by what it is, not by what it is called: it follows
 * symlinks, refuses pseudo file systems, and reads the file's first bytes. A `#!` script, or a
 * file that is neither a script nor a native binary (the system runs such a file with
 * `/bin/sh`), is a launcher: its behaviour is its text. A native binary is a launcher when the
 * file it resolves to has a launcher's name, or is the same file (inode) as, or a byte-for-byte
 * copy of, a launcher installed on this machine or one of `extraLaunchers`.
 *
 * @returns the identity, or a string saying why the command cannot be run at all
 */
export function identifyCommand(
  command: string,
  options: IdentifyOptions = {},
): CommandIdentity | string {
  const pseudo = (p: string) => PSEUDO_DIRS.find((d) => isInside(p, d));
  const written = pseudo(command);
  if (written !== undefined) {
    return `${command} lies in ${written}, a pseudo file system: what it names changes with ` +
      "the process that opens it (/proc/self/exe is the host itself); grant a program file";
  }
  let real: string;
  let info: Deno.FileInfo;
  try {
    real = Deno.realPathSync(command);
    info = Deno.statSync(real);
  } catch (e) {
    return `${command} cannot be resolved (${(e as Error).message}); install it, or fix the path`;
  }
  const resolved = pseudo(real);
  if (resolved !== undefined) {
    return `${command} resolves to ${real}, in ${resolved}, a pseudo file system whose files ` +
      "change with the process that opens them; grant a program file";
  }
  if (!info.isFile) return `${command} resolves to ${real}, which is not a regular file`;
  if (info.mode !== null && (info.mode & 0o111) === 0) {
    return `${command} resolves to ${real}, which is not executable`;
  }
  let head: Uint8Array;
  try {
    head = readHead(real);
  } catch (e) {
    return `${command} resolves to ${real}, which cannot be read (${(e as Error).message})`;
  }
  const base = {
    command,
    real,
    dev: info.dev,
    ino: info.ino ?? 0,
    size: info.size,
  };
  if (head[0] === 0x23 && head[1] === 0x21) {
    const line = new TextDecoder().decode(head.subarray(2)).split("\n", 1)[0]!.trim();
    const interpreter = line.split(/\s+/, 1)[0] || "(none)";
    return {
      ...base,
      format: "script",
      launcher: `a script run by ${interpreter}: what it does is its text and its arguments`,
    };
  }
  const elf = head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
  if (!elf) {
    return {
      ...base,
      format: "other",
      launcher: "neither a native binary nor a #! script: the system runs such a file with " +
        "/bin/sh, as a shell script",
    };
  }
  const byName = launcherName(basename(real));
  if (byName !== undefined) {
    const shown = real === command ? "" : ` (it resolves to ${real})`;
    return { ...base, format: "elf", launcher: `a launcher, ${byName}${shown}` };
  }
  const known = knownLaunchers(options.extraLaunchers ?? [Deno.execPath()]);
  const same = known.byInode.get(inodeKey(info));
  if (same !== undefined) {
    return {
      ...base,
      format: "elf",
      launcher: `the same file as ${same.path} (${same.name}), a launcher, under another name`,
    };
  }
  const candidates = known.bySize.get(info.size) ?? [];
  if (candidates.length > 0) {
    const mine = sha256File(real);
    for (const c of candidates) {
      c.sha256 ??= sha256File(c.path);
      if (mine !== undefined && c.sha256 === mine) {
        return {
          ...base,
          format: "elf",
          launcher: `a copy of ${c.path} (${c.name}), a launcher, under another name`,
        };
      }
    }
  }
  return { ...base, format: "elf" };
}

/**
 * Why `real` could be swapped by someone other than its owner: the file, or a folder above
 * it, is writable by group or others (a sticky folder such as /tmp lets others add files but
 * not replace this one).
 */
export function swappableBy(real: string): string | undefined {
  let path = real;
  for (;;) {
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(path);
    } catch {
      return undefined;
    }
    const mode = info.mode ?? 0;
    const sticky = (mode & 0o1000) !== 0;
    if ((mode & 0o022) !== 0 && !(info.isDirectory && sticky)) {
      return `${path} is writable by ${(mode & 0o002) !== 0 ? "others" : "its group"}`;
    }
    const parent = dirname(path);
    if (parent === path) return undefined;
    path = parent;
  }
}
