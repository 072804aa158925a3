import { join } from "node:path";
import { isInside } from "../manifest/mod.ts";
import type { CompiledSandbox, Refusal, ResolvedFsGrant } from "./types.ts";

/** Options of {@linkcode checkGrantSymlinks}. */
export interface CheckSymlinksOptions {
  /**
   * Most directory entries examined over all grants. When reached, every grant not fully
   * examined is refused (fail closed). Default: 10 000.
   */
  maxEntries?: number;
  /** Aborts the walk. */
  signal?: AbortSignal;
}

function permissions(g: ResolvedFsGrant): string {
  return [g.read ? "read" : "", g.write ? "write" : ""].filter((s) => s !== "").join(", ");
}

class BudgetExceeded extends Error {}

/**
 * Walks every granted folder and refuses each symlink that resolves outside the grant's root.
 * Deno checks a path against its grants by the path as written, so `${DATA_DIR}/etc -> /etc`
 * would open `/etc` to a plugin holding `${DATA_DIR}`. Broken symlinks are refused too: their
 * target can be created later, anywhere. Device nodes are refused (they reach hardware, not
 * files). Symlinked folders are not descended (their target is checked instead).
 *
 * Plugins cannot create symlinks themselves: `Deno.symlink` needs unscoped `--allow-read`
 * and `--allow-write`, which the compiler never gives. So a check before each start covers
 * links placed by anyone else.
 *
 * @param grants a compiled sandbox (its `fs` grants) or the grants themselves
 * @param options `maxEntries` (default 10 000), `signal`
 * @returns one refusal per offending entry (empty when all is well)
 *
 * @example
 * ```ts
 * const refusals = [...compiled.refusals, ...(await checkGrantSymlinks(compiled))];
 * if (refusals.length > 0) throw SandboxError.grantRefused(plugin, refusals);
 * ```
 */
export async function checkGrantSymlinks(
  grants: CompiledSandbox | readonly ResolvedFsGrant[],
  options: CheckSymlinksOptions = {},
): Promise<Refusal[]> {
  const list: readonly ResolvedFsGrant[] = "fs" in grants ? grants.fs : grants;
  const maxEntries = options.maxEntries ?? 10_000;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new RangeError(`maxEntries must be a positive integer: ${maxEntries}`);
  }
  const refusals: Refusal[] = [];
  let budget = maxEntries;
  let exhausted = false;

  for (const grant of list) {
    options.signal?.throwIfAborted();
    const refuse = (reason: string) =>
      refusals.push({ at: grant.at, grant: `${grant.declared} (${permissions(grant)})`, reason });
    if (exhausted) {
      refuse(
        `not verified: the walk stopped after ${maxEntries} entries; grant a smaller folder`,
      );
      continue;
    }
    let root: Deno.FileInfo;
    try {
      root = await Deno.lstat(grant.path);
    } catch {
      continue; // does not exist yet: nothing to walk
    }
    if (root.isSymlink) {
      refuse(`${grant.path} is itself a symlink; grant its target instead`);
      continue;
    }
    if (!root.isDirectory) continue;

    const checkLink = async (path: string) => {
      let target: string;
      try {
        target = await Deno.realPath(path);
      } catch {
        const to = await Deno.readLink(path).catch(() => "?");
        refuse(
          `${path} is a broken symlink (to ${to}); its target could later be created anywhere. ` +
            "Remove the link",
        );
        return;
      }
      if (!isInside(target, grant.path)) {
        refuse(
          `${path} is a symlink to ${target}, outside ${grant.path}; Deno checks the link's ` +
            "path, so the plugin could reach the target. Remove the link or replace it with a copy",
        );
      }
    };

    const stack = [grant.path];
    try {
      while (stack.length > 0) {
        const dir = stack.pop()!;
        for await (const entry of Deno.readDir(dir)) {
          if (--budget < 0) throw new BudgetExceeded();
          if (budget % 256 === 0) options.signal?.throwIfAborted();
          const path = join(dir, entry.name);
          if (entry.isSymlink) await checkLink(path);
          else if (entry.isDirectory) stack.push(path);
          else if (!entry.isFile) {
            const info = await Deno.lstat(path).catch(() => undefined);
            if (info?.isBlockDevice || info?.isCharDevice) {
              refuse(`${path} is a device node; remove it from the granted folder`);
            }
          }
        }
      }
    } catch (e) {
      if (e instanceof BudgetExceeded) {
        exhausted = true;
        refuse(
          `${grant.path} holds more than ${maxEntries} entries (with the other grants), too many ` +
            "to verify that no symlink leads outside it; grant a smaller folder",
        );
        continue;
      }
      if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotFound) {
        refuse(
          `${grant.path} could not be fully examined (${String(e)}); fix its permissions so the ` +
            "host can verify it",
        );
        continue;
      }
      throw e;
    }
  }
  return refusals;
}
