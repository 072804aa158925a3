import type { PluginDescriptor } from "../manifest/mod.ts";
import { type CompiledSandbox, compileSandbox, type SandboxContext } from "../sandbox/mod.ts";
import { inert, quoted } from "./_quote.ts";
import { permissionReport } from "./permission_report.ts";
import type { UsageEntry } from "./permission_tally.ts";

type Capabilities = PluginDescriptor["manifest"]["capabilities"];

/** A denied attempt turned into a grant the permission compiler accepts. */
export interface ProposedAddition {
  readonly permission: string;
  readonly value: string;
  readonly count: number;
  /** `filesystem`, `network.egress` or `env`. */
  readonly section: "filesystem" | "network.egress" | "env";
  /** The manifest entry to add. */
  readonly entry: unknown;
}

/** A denied attempt the compiler would refuse as a grant: shown, never proposed. */
export interface RefusedAddition {
  readonly permission: string;
  readonly value: string;
  readonly count: number;
  readonly reason: string;
}

/** What learn mode proposes for a plugin's `capabilities:`. */
export interface CapabilityProposal {
  readonly plugin: string;
  /** Manifest paths of declared grants never used (to remove). */
  readonly remove: readonly string[];
  readonly add: readonly ProposedAddition[];
  readonly refused: readonly RefusedAddition[];
  /** The block: kept grants, removals as comments, additions. */
  readonly text: string;
}

/**
 * Proposes a `capabilities:` block from what a plugin used (`usage`: the checks of the learn
 * session): declared grants never used are marked for removal, denied checks become
 * additions, each compiled alone with the plugin's other grants by the permission compiler
 * (`ctx` as at a spawn); one the compiler refuses (`/proc`, a path outside the allowed roots,
 * `run`) is listed as refused with the compiler's reason, never proposed.
 */
export function proposeCapabilities(
  compiled: CompiledSandbox,
  ctx: SandboxContext,
  usage: readonly UsageEntry[],
): CapabilityProposal {
  const plugin = compiled.plugin;
  const caps = plugin.manifest.capabilities;
  const report = permissionReport(compiled, usage);
  // A grant is removed only when none of its parts was used.
  const usedAt = new Set(report.grants.filter((g) => g.used).map((g) => g.at));
  const remove = [...new Set(report.grants.filter((g) => !usedAt.has(g.at)).map((g) => g.at))];
  const add: ProposedAddition[] = [];
  const refused: RefusedAddition[] = [];
  // Read and write of one path become one grant.
  const fsWanted = new Map<string, { perms: Set<"read" | "write">; count: number }>();
  for (const d of report.denied) {
    const refuse = (reason: string) => refused.push({ ...d, reason });
    if (d.permission === "read" || d.permission === "write") {
      if (d.value === "*") {
        refuse("a check of every path: no grant covers it");
        continue;
      }
      const w = fsWanted.get(d.value) ?? { perms: new Set(), count: 0 };
      w.perms.add(d.permission);
      w.count += d.count;
      fsWanted.set(d.value, w);
    } else if (d.permission === "net") {
      const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(d.value);
      if (!m) {
        refuse("Deno grants host:port pairs; this check names no port");
        continue;
      }
      const entry = {
        protocol: "tcp" as const,
        hosts: [m[1]!.replace(/^\[|\]$/g, "")],
        ports: [Number(m[2])],
      };
      const why = check(plugin, ctx, {
        ...caps,
        network: { ...caps.network, egress: [...caps.network.egress, entry] },
      }, `capabilities.network.egress[${caps.network.egress.length}]`);
      if (why) refuse(why);
      else add.push({ ...d, section: "network.egress", entry });
    } else if (d.permission === "env") {
      if (d.value === "*") {
        refuse("the whole environment (Deno.env.toObject()): grant names one by one");
        continue;
      }
      const why = check(
        plugin,
        ctx,
        { ...caps, env: [...caps.env, d.value] },
        `capabilities.env[${caps.env.length}]`,
      );
      if (why) refuse(why);
      else add.push({ ...d, section: "env", entry: d.value });
    } else {
      refuse(
        `plugsconc never grants --allow-${d.permission}${
          d.permission === "run" ? " (use a process grant: the host runs the command)" : ""
        }`,
      );
    }
  }
  for (const [path, w] of fsWanted) {
    const entry = { path, permissions: [...w.perms].sort() };
    const why = check(plugin, ctx, {
      ...caps,
      filesystem: [...caps.filesystem, { ...entry, recursive: true }],
    }, `capabilities.filesystem[${caps.filesystem.length}]`);
    const d = { permission: [...w.perms].sort().join("+"), value: path, count: w.count };
    if (why) refused.push({ ...d, reason: why });
    else add.push({ ...d, section: "filesystem", entry });
  }
  return { plugin: plugin.name, remove, add, refused, text: render(caps, remove, add, refused) };
}

/** The compiler's refusal of the grant at `at` in `caps`, if it refuses it. */
function check(
  plugin: PluginDescriptor,
  ctx: SandboxContext,
  caps: Capabilities,
  at: string,
): string | undefined {
  const trial = { ...plugin, manifest: { ...plugin.manifest, capabilities: caps } };
  try {
    const out = compileSandbox(trial, ctx);
    const r = out.refusals.find((x) => x.at === at || x.at.startsWith(at + "."));
    return r?.reason;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * YAML flow style: `{ path: "./data", permissions: ["read"] }`. Strings (keys too) are
 * JSON-quoted with every control character escaped: the values come from the plugin (paths it
 * tried, its manifest), and none may end the line it is on.
 */
function flow(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(flow).join(", ")}]`;
  if (v !== null && typeof v === "object") {
    return `{ ${
      Object.entries(v).map(([k, x]) => `${/^[a-z_]+$/.test(k) ? k : quoted(k)}: ${flow(x)}`)
        .join(", ")
    } }`;
  }
  return typeof v === "string" ? quoted(v) : JSON.stringify(v);
}

function render(
  caps: Capabilities,
  remove: readonly string[],
  add: readonly ProposedAddition[],
  refused: readonly RefusedAddition[],
): string {
  const out = ["capabilities:"];
  const removed = new Set(remove);
  const item = (at: string, v: unknown) =>
    removed.has(at) ? `    # REMOVE (never used): - ${flow(v)}` : `    - ${flow(v)}`;
  const adds = (section: string) =>
    add.filter((a) => a.section === section).map((a) =>
      `    - ${flow(a.entry)}  # ADD: denied ${a.count} time(s)`
    );
  const fs = [
    ...caps.filesystem.map((g, i) =>
      item(`capabilities.filesystem[${i}]`, {
        path: g.path,
        permissions: g.permissions,
        ...(g.recursive ? {} : { recursive: false }),
      })
    ),
    ...adds("filesystem"),
  ];
  if (fs.length > 0) out.push("  filesystem:", ...fs);
  const egress = [
    ...caps.network.egress.map((r, i) => item(`capabilities.network.egress[${i}]`, r)),
    ...adds("network.egress"),
  ];
  const ingress = caps.network.ingress.map((r, i) => item(`capabilities.network.ingress[${i}]`, r));
  if (egress.length + ingress.length > 0) {
    out.push("  network:");
    if (egress.length > 0) out.push("    egress:", ...egress.map((l) => "  " + l));
    if (ingress.length > 0) out.push("    ingress:", ...ingress.map((l) => "  " + l));
  }
  if (caps.process.length > 0) {
    out.push("  process:  # not audited by Deno (the host runs these): kept as declared");
    out.push(...caps.process.map((p) => `    - ${flow(p)}`));
  }
  const env = [...caps.env.map((n, i) => item(`capabilities.env[${i}]`, n)), ...adds("env")];
  if (env.length > 0) out.push("  env:", ...env);
  if (out.length === 1) out[0] = "capabilities: {}";
  for (const r of refused) {
    out.push(
      `# REFUSED (not proposed): ${inert(r.permission)} ${quoted(r.value)} (${r.count} time(s)): ` +
        inert(r.reason),
    );
  }
  return out.join("\n") + "\n";
}
