import { basename, dirname, isAbsolute, join, normalize } from "node:path";
import { isInside, type PluginDescriptor } from "../manifest/mod.ts";
import { type CommandIdentity, identifyCommand, swappableBy } from "./command_identity.ts";
import type { Refusal, ResolvedCommand, SandboxContext } from "./types.ts";

/** The manifest's wildcard arguments: one plugin-chosen word, or a path in its data folder. */
const WILDCARDS = new Set(["*", "${DATA_DIR}/*"]);

/** Where the process rules report refusals and warnings. */
export interface RuleOut {
  refuse(r: Refusal): void;
  warn(w: string): void;
}

function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,*-]+$/.test(word) ? word : JSON.stringify(word);
}

/** The process grants as text, for `plugins inspect` and `run`. */
export function describeProcess(plugin: PluginDescriptor): string[] {
  return plugin.manifest.capabilities.process.map((cap) =>
    "exec" in cap
      ? ["exec", cap.exec.command, ...cap.exec.args].map(shellWord).join(" ")
      : `kill ${cap.kill.join(", ")}`
  );
}

function realOr(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/** The longest existing prefix of `path`, symlinks resolved, with the rest appended. */
function realPrefix(path: string): string {
  const rest: string[] = [];
  let head = path;
  for (let i = 0; i < 256; i++) {
    try {
      return join(Deno.realPathSync(head), ...rest);
    } catch {
      const parent = dirname(head);
      if (parent === head) break;
      rest.unshift(basename(head));
      head = parent;
    }
  }
  return path;
}

/**
 * Whether a literal argument names a file in a folder the plugin writes or ships (it could
 * change what the command reads, and a program that runs what it reads runs the plugin's
 * code), or climbs out of the children's folder with a `..` segment. Every absolute path in
 * the argument (`/a/./b`, `//a`, `--opt=/a`, `.read /a`) is normalised and its symlinks are
 * resolved before it is compared.
 */
function reachesPluginFiles(arg: string, roots: readonly string[]): boolean {
  if (/(?:^|[\s/=:'"])\.\.(?:$|[\s/'"])/.test(arg)) return true;
  for (const token of arg.split(/[\s=:,;'"()<>|&]+/)) {
    const at = token.indexOf("/");
    if (at < 0) continue;
    const path = normalize(token.slice(at));
    if (!isAbsolute(path)) continue;
    const real = realPrefix(path);
    if (roots.some((r) => isInside(path, r) || isInside(real, r))) return true;
  }
  return false;
}

/** `security.process.allow`, each entry resolved to the file it names (missing ones left out). */
function operatorList(
  ctx: SandboxContext,
  identify: (command: string) => CommandIdentity | string,
  out: RuleOut,
): { entry: { command: string; options: readonly string[] }; id: CommandIdentity }[] {
  return ctx.config.security.process.allow.flatMap((entry, i) => {
    const id = identify(entry.command);
    if (typeof id !== "string") return [{ entry, id }];
    // A typo in the operator's list must not look like a plugin refused for no reason.
    out.warn(`security.process.allow[${i}] is ignored: ${id}`);
    return [];
  });
}

/**
 * The rules for `capabilities.process` (DESIGN §4; the README's trust model for process
 * grants). Each `exec` command is identified by the file it resolves to
 * ({@linkcode identifyCommand}), never by its name, and:
 *
 * - a pseudo path (`/proc/self/exe`, `/dev/fd/3`), a missing or non-executable file, a file in
 *   a plugins or data folder, or one that someone besides its owner could replace, is refused
 *   under every policy (permissive only warns about a missing file);
 * - under `strict`, a launcher (shell, interpreter, script, a program that runs its arguments)
 *   and any grant with a wildcard argument are refused unless the host operator lists the
 *   command (the same file) under `security.process.allow`; next to a wildcard, a literal
 *   option (`-c`, `-e`, ...) is refused unless that entry lists it (`--` always passes);
 * - under `permissive`, those are warnings.
 *
 * @returns the commands granted, each pinned to its file, for the process service
 */
export function checkProcessGrants(
  plugin: PluginDescriptor,
  ctx: SandboxContext,
  out: RuleOut,
): ResolvedCommand[] {
  const strict = ctx.config.security.policy === "strict";
  const identify = ctx.identifyCommand ?? ((c: string) => identifyCommand(c));
  const grants = plugin.manifest.capabilities.process.flatMap((cap, i) =>
    "exec" in cap ? [{ ...cap.exec, at: `capabilities.process[${i}].exec` }] : []
  );
  if (grants.length === 0) return [];
  const listed = operatorList(ctx, identify, out);
  const writableRoots = [ctx.config.dirs.plugins, ctx.config.dirs.data, plugin.dir, ctx.dataDir];
  const pluginRoots = [...new Set(writableRoots.flatMap((r) => [r, realOr(r)]))];
  const resolved = new Map<string, ResolvedCommand>();
  for (const { command, args, at } of grants) {
    const grant = [command, ...args].map(shellWord).join(" ");
    const refuse = (reason: string) => out.refuse({ at, grant, reason });
    const id = identify(command);
    if (typeof id === "string") {
      // A missing program under permissive: the spawn fails later, with the same words.
      if (!strict && /cannot be resolved/.test(id)) {
        out.warn(`${at}: ${id}`);
        continue;
      }
      refuse(id);
      continue;
    }
    const root = writableRoots.find((r) => isInside(id.real, r) || isInside(command, r));
    if (root !== undefined) {
      refuse(
        `${id.real} lies in ${root}, where plugins' code and data live: a program there is ` +
          "the plugin's own code, outside the sandbox; grant a program installed outside",
      );
      continue;
    }
    const swap = swappableBy(id.real);
    if (swap !== undefined) {
      refuse(
        `${command} resolves to ${id.real}, and ${swap}: it could be replaced by another program`,
      );
      continue;
    }
    const entry = listed.find((l) => l.id.dev === id.dev && l.id.ino === id.ino)?.entry;
    const wild = args.some((a) => WILDCARDS.has(a));
    const problems: string[] = [];
    if (id.launcher !== undefined && entry === undefined) {
      problems.push(
        `${command} is ${id.launcher}. Its arguments are code, and that code can run files ` +
          "the plugin writes: anything, outside the sandbox, with the host's rights",
      );
    }
    if (wild && entry === undefined) {
      problems.push(
        `a wildcard argument ("*" or "\${DATA_DIR}/*") lets the plugin choose what ${command} ` +
          "is given, and plugsconc cannot know what every program does with its arguments",
      );
    }
    // An option can make a program run a command (tar --to-command=sh, split --filter=sh,
    // ssh-keygen -D lib.so) with no wildcard at all: under strict, the operator lists each one.
    const options = args.filter((a) =>
      !WILDCARDS.has(a) && a.startsWith("-") && a !== "--" &&
      a !== "-"
    );
    const unlisted = options.filter((o) => !(entry?.options ?? []).includes(o));
    if (unlisted.length > 0 && (strict || wild)) {
      problems.push(
        `the option${unlisted.length > 1 ? "s" : ""} ${unlisted.join(" ")} may make ${command} ` +
          "run a command or load code the plugin names (like sh -c, perl -e, " +
          "tar --to-command=sh, split --filter=sh)",
      );
    }
    const reaching = args.filter((a) => !WILDCARDS.has(a) && reachesPluginFiles(a, pluginRoots));
    if (reaching.length > 0) {
      problems.push(
        `the argument${reaching.length > 1 ? "s" : ""} ${reaching.map(shellWord).join(" ")} ` +
          "name the plugins' or data folders (or climb with ..): the plugin can change what " +
          `${command} reads there; pass data as \${DATA_DIR}/* instead`,
      );
    }
    if (problems.length > 0) {
      const fix = entry !== undefined
        ? "the host operator lists the command, but not this"
        : "only the host operator can grant this: list it under security.process.allow in the " +
          `host config${wild ? ", with the options it may take next to a wildcard" : ""}, if ` +
          `they vouch for it${
            wild && id.launcher === undefined ? "; or spell every argument out" : ""
          }`;
      if (strict) {
        refuse(`${problems.join("; ")}. Under security.policy strict ${fix}`);
        continue;
      }
      out.warn(`${at}: ${problems.join("; ")} (allowed: policy permissive)`);
    }
    resolved.set(command, {
      command,
      real: id.real,
      dev: id.dev,
      ino: id.ino,
      ...(id.launcher === undefined ? {} : { launcher: id.launcher }),
      listed: entry !== undefined,
    });
  }
  return [...resolved.values()];
}
