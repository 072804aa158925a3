import { isInside } from "../manifest/mod.ts";
import type { CompiledSandbox } from "./types.ts";

/** One grant the newer sandbox has that the older one did not. */
export interface WidenedGrant {
  /** Which kind of grant. */
  readonly kind: "read" | "write" | "net" | "env" | "process" | "plugins" | "memory" | "flag";
  /** The grant as `plugins inspect` shows it (a path, `host:port`, a name, a command). */
  readonly grant: string;
}

/**
 * What `after` grants that `before` did not: the diff a reload must show (and, under
 * `security.policy: strict`, hold) before a changed manifest gets more than the running
 * version had. A path is covered by an earlier grant of the same kind on it or on a folder
 * above it (Deno grants are recursive); the other kinds compare as written; a bigger heap
 * (`memory_mb`) and any other new `deno run` flag (`--unstable-net` for UDP) count too.
 * Narrowing and unchanged grants yield nothing.
 *
 * @example
 * ```ts
 * const widened = widenedGrants(running.compiled, compileSandbox(plugin, ctx));
 * if (widened.length > 0) log.warning("widens: {grants}", { grants: widened });
 * ```
 */
export function widenedGrants(
  before: Pick<CompiledSandbox, "grants" | "argv">,
  after: Pick<CompiledSandbox, "grants" | "argv">,
): WidenedGrant[] {
  const out: WidenedGrant[] = [];
  for (const kind of ["read", "write"] as const) {
    for (const path of after.grants[kind]) {
      if (!before.grants[kind].some((old) => isInside(path, old))) out.push({ kind, grant: path });
    }
  }
  for (const kind of ["net", "env", "process", "plugins"] as const) {
    const old = new Set(before.grants[kind]);
    for (const grant of after.grants[kind]) if (!old.has(grant)) out.push({ kind, grant });
  }
  // What the argv gives beyond the grants: a bigger heap, --unstable-net (UDP), any new flag.
  const mb = (argv: readonly string[]) =>
    Number(argv.find((a) => a.startsWith(HEAP_FLAG))?.slice(HEAP_FLAG.length) ?? NaN);
  if (mb(after.argv) > mb(before.argv)) {
    out.push({ kind: "memory", grant: `${mb(after.argv)} MB (was ${mb(before.argv)} MB)` });
  }
  const flags = (argv: readonly string[]) =>
    argv.slice(1, -1).filter((a) => !COMPARED_AS_GRANTS.some((p) => a.startsWith(p)));
  const oldFlags = new Set(flags(before.argv));
  for (const f of flags(after.argv)) if (!oldFlags.has(f)) out.push({ kind: "flag", grant: f });
  return out;
}

const HEAP_FLAG = "--v8-flags=--max-old-space-size=";
/** Flags compared above (as grants or the heap size), or set by the host alone. */
const COMPARED_AS_GRANTS = [
  "--allow-read=",
  "--allow-write=",
  "--allow-net=",
  "--allow-env=",
  "--deny-net=",
  "--import-map=",
  HEAP_FLAG,
];

/** `+read /srv/x, +net api.example.com:443`: a widening as one line for logs. */
export function describeWidening(widened: readonly WidenedGrant[]): string {
  return widened.map((w) => `+${w.kind} ${w.grant}`).join(", ");
}
