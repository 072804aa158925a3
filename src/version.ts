import denoJson from "../deno.json" with { type: "json" };

/** The plugsconc version (from deno.json). */
export const VERSION: string = denoJson.version;

/** The oldest Deno plugsconc runs on. */
export const MIN_DENO = "2.5.0";

/** Compares dotted versions numerically: negative if a < b, 0 if equal, positive if a > b. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+-]/).slice(0, 3).map((n) => Number.parseInt(n, 10) || 0);
  const pb = b.split(/[.+-]/).slice(0, 3).map((n) => Number.parseInt(n, 10) || 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** `undefined` when `found` is new enough, else the one-line refusal. */
export function denoVersionProblem(found: string, needed = MIN_DENO): string | undefined {
  if (compareVersions(found, needed) >= 0) return undefined;
  return `plugsconc needs Deno ${needed} or newer, but found Deno ${found}; ` +
    `upgrade (deno upgrade) or run it with: npx -y deno@2.9.6 task start`;
}
