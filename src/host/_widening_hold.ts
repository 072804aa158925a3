import { getLogger } from "@logtape/logtape";
import { auditEvent } from "../audit/mod.ts";
import type { Config } from "../config/mod.ts";
import type { PluginDescriptor } from "../manifest/mod.ts";
import {
  type CompiledSandbox,
  compileSandbox,
  describeWidening,
  type WidenedGrant,
  widenedGrants,
} from "../sandbox/mod.ts";
import type { Entry } from "./_entry.ts";
import { type HostRuntime, sandboxContext } from "./host_runtime.ts";

const log = getLogger(["plugsconc", "host"]);

/** A reload {@linkcode holdsWidening} judges. */
export interface WideningChange {
  /** The running version, if any. */
  readonly current: Entry | undefined;
  /** The new version on disk. */
  readonly plugin: PluginDescriptor;
  /** The changed paths (logged). */
  readonly paths: readonly string[];
}

/** What {@linkcode holdsWidening} needs of the host. */
export interface WideningContext {
  readonly config: Config;
  readonly configFile: string | undefined;
  readonly runtime: HostRuntime;
  /** The sandbox each plugin name last started with. */
  readonly approved: ReadonlyMap<string, CompiledSandbox>;
}

/** A reload {@linkcode holdsWidening} holds: why, and the diff the API shows. */
export interface Widening {
  /** `its manifest widens its capabilities: <diff>`. */
  readonly reason: string;
  /** The widening as one line: `+net api.example.com:443`, `renamed from cat`. */
  readonly diff: string;
  /** The grants the new version adds (env names, never values). */
  readonly widened: readonly WidenedGrant[];
}

/**
 * Why a reload must wait, if it must: the new manifest grants more than the running version
 * has (DESIGN §6). Under `security.policy: strict` it is held, logged with the diff, until the
 * host restarts (an operator's decision) or the change is reverted; `permissive` reloads and
 * warns.
 */
export function holdsWidening(
  change: WideningChange,
  ctx: WideningContext,
): Widening | undefined {
  const { current, plugin, paths } = change;
  const { config, runtime } = ctx;
  const sandbox = (p: PluginDescriptor) =>
    compileSandbox(p, sandboxContext(config, ctx.configFile, p, runtime));
  const next = sandbox(plugin);
  // Refused grants are the launch's to report: a restart would not grant them either.
  if (next.refusals.length > 0) return undefined;
  // Removed and added again, a plugin is compared with what it last ran with.
  const baseline = current
    ? current.compiled ?? sandbox(current.plugin)
    : ctx.approved.get(plugin.name);
  const renamed = current !== undefined && current.plugin.name !== plugin.name;
  const widened = baseline ? widenedGrants(baseline, next) : [];
  if (widened.length === 0 && !renamed) return undefined;
  const diff = [
    // Another name means another plugin's host config (env values, memory, timeouts).
    ...(renamed ? [`renamed from ${current.plugin.name}`] : []),
    ...(widened.length > 0 ? [describeWidening(widened)] : []),
  ].join("; ");
  const fields = { plugin: plugin.name, diff, widened, paths };
  if (config.security.policy === "permissive") {
    log.warning(
      "plugin {plugin} reloads with wider capabilities: {diff} (security.policy: permissive)",
      fields,
    );
    return undefined;
  }
  auditEvent({ kind: "widening.held", plugin: plugin.name, detail: { diff, widened } });
  log.warning(
    "reload of {plugin} held: its manifest widens its capabilities: {diff}. The running " +
      "process keeps serving with its grants (restarted after a crash, it runs the code now " +
      "on disk with those grants). Restart the host to grant them, or revert the change " +
      "(security.policy: strict)",
    fields,
  );
  return { reason: `its manifest widens its capabilities: ${diff}`, diff, widened };
}
