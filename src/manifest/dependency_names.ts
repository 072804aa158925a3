import type { PluginDescriptor } from "./load_manifest.ts";
import type { Manifest } from "./schema.ts";

/**
 * The plugins a manifest names as dependencies for start and stop order: its `depends_on`,
 * then the targets of `capabilities.plugins` not already among them (each name once).
 *
 * @example
 * ```ts
 * for (const dep of dependencyNames(plugin.manifest)) await started.get(dep);
 * ```
 */
export function dependencyNames(manifest: Pick<Manifest, "depends_on" | "capabilities">): string[] {
  return [...new Set([...manifest.depends_on, ...callTargets(manifest)])];
}

/**
 * The plugins a manifest may call (`capabilities.plugins`) that it does not also list in
 * `depends_on`: they order the start when present, but their absence or failure does not
 * keep it from starting (its calls to them then fail).
 */
export function callTargets(manifest: Pick<Manifest, "depends_on" | "capabilities">): string[] {
  // Fakes in tests may leave capabilities out; a validated manifest always has them.
  const hard = new Set(manifest.depends_on);
  return [...new Set((manifest.capabilities?.plugins ?? []).map((t) => t.name))].filter((n) =>
    !hard.has(n)
  );
}

/**
 * `order` (every plugin after its `depends_on`) re-ordered so that each plugin also comes
 * after the plugins it may call, wherever that closes no cycle: plugins that call each other
 * (`a` calls `b.x`, `b` calls `a.y`) are legitimate, since the host refuses a call chain that
 * comes back to a plugin (`a -> b -> a`) when it is made. Such a call edge is dropped (the
 * one found later, in `order`), a `depends_on` edge never is.
 */
export function orderCallTargets(order: readonly PluginDescriptor[]): PluginDescriptor[] {
  const byName = new Map(order.map((p) => [p.name, p]));
  const edges = new Map(
    order.map((p) => [p.name, p.manifest.depends_on.filter((d) => byName.has(d))]),
  );
  const reaches = (from: string, to: string): boolean => {
    const seen = new Set<string>();
    const stack = [from];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n === to) return true;
      if (seen.has(n)) continue;
      seen.add(n);
      stack.push(...edges.get(n)!);
    }
    return false;
  };
  for (const p of order) {
    for (const t of callTargets(p.manifest)) {
      if (byName.has(t) && !reaches(t, p.name)) edges.get(p.name)!.push(t);
    }
  }
  const out: PluginDescriptor[] = [];
  const done = new Set<string>();
  // The edges are acyclic, so marking before the dependencies are visited is safe.
  const visit = (name: string) => {
    if (done.has(name)) return;
    done.add(name);
    for (const d of edges.get(name)!) visit(d);
    out.push(byName.get(name)!);
  };
  for (const p of order) visit(p.name);
  return out;
}
