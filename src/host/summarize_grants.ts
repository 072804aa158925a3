import type { CompiledSandbox } from "../sandbox/mod.ts";

/**
 * `read: a, b; write: c; net: h:443; env: TZ; process: exec /bin/x; may call b.echo, b.add`
 * (or `none`).
 */
export function summarizeGrants(compiled: CompiledSandbox): string {
  const g = compiled.grants;
  const parts = ([
    ["read", g.read],
    ["write", g.write],
    ["net", g.net],
    ["env", g.env],
    ["process", g.process],
  ] as const).filter(([, v]) => v.length > 0).map(([k, v]) => `${k}: ${v.join(", ")}`);
  if (g.plugins.length > 0) parts.push(`may call ${g.plugins.join(", ")}`);
  return parts.length > 0 ? parts.join("; ") : "none";
}
