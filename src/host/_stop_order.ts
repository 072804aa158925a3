import { dependencyNames } from "../manifest/mod.ts";
import type { Entry } from "./_entry.ts";

/**
 * Entries grouped for stopping: first those nothing running depends on (or may call), then
 * what those depended on, and so on (each group can stop in parallel).
 */
export function stopLevels(entries: readonly Entry[]): Entry[][] {
  const byName = new Map(entries.map((e) => [e.plugin.name, e]));
  const depth = new Map<string, number>();
  // depth = 1 + the deepest dependent; a plugin nobody depends on has depth 0.
  const visit = (e: Entry, d: number, seen: Set<string>) => {
    if ((depth.get(e.plugin.name) ?? -1) >= d || seen.has(e.plugin.name)) return;
    depth.set(e.plugin.name, d);
    seen.add(e.plugin.name);
    for (const dep of dependencyNames(e.plugin.manifest)) {
      const de = byName.get(dep);
      if (de) visit(de, d + 1, seen);
    }
    seen.delete(e.plugin.name);
  };
  for (const e of entries) visit(e, 0, new Set());
  const levels: Entry[][] = [];
  for (const e of entries) (levels[depth.get(e.plugin.name) ?? 0] ??= []).push(e);
  return levels.filter((l) => l !== undefined);
}

/** Stops a plugin's health checks and every instance (drain, then polite-then-forced stop). */
export async function stopEntry(e: Entry): Promise<void> {
  await e.instances?.close();
  const results = await Promise.allSettled((e.supervisors ?? []).map((s) => s.stop()));
  const bad = results.find((r) => r.status === "rejected");
  if (bad) throw bad.reason;
}
