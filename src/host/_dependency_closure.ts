import { dependencyNames, type PluginDescriptor } from "../manifest/mod.ts";
import { PluginNotFoundError } from "../runtime/mod.ts";

/** `names` and everything they depend on or may call; unknown names are an error. */
export function dependencyClosure(
  plugins: readonly PluginDescriptor[],
  names: readonly string[],
): PluginDescriptor[] {
  const byName = new Map(plugins.map((p) => [p.name, p]));
  const out = new Map<string, PluginDescriptor>();
  const add = (name: string) => {
    if (out.has(name)) return;
    const p = byName.get(name);
    if (p === undefined) throw new PluginNotFoundError(name, undefined, [...byName.keys()]);
    out.set(name, p);
    for (const d of dependencyNames(p.manifest)) if (byName.has(d)) add(d);
  };
  for (const n of names) add(n);
  return [...out.values()];
}
