/** `MAJOR.MINOR.PATCH` with optional `-prerelease` and `+build`. */
export const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

function parts(v: string): [number, number, number] {
  const [a, b, c] = v.replace(/^[v=]/, "").split(/[.+-]/);
  const n = (s: string | undefined) => (s === undefined || s === "x" || s === "*" ? 0 : Number(s));
  return [n(a), n(b), n(c)];
}

function cmp(a: [number, number, number], b: [number, number, number]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

const COMPARATOR = /^(>=|<=|>|<|=|\^|~)?\s*v?(\d+|x|\*)(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?$/;

/** Whether `range` (npm-style: `>=1.2.0 <2`, `^0.1.0`, `~1.2`, `1.x`, `a || b`) is well formed. */
export function isValidRange(range: string): boolean {
  return range.split("||").every((alt) =>
    alt.trim().split(/\s+/).every((c) => c === "" || c === "*" || COMPARATOR.test(c))
  );
}

/** Whether `version` satisfies `range` (the subset {@link isValidRange} accepts). */
export function satisfies(version: string, range: string): boolean {
  const v = parts(version);
  return range.split("||").some((alt) =>
    alt.trim().split(/\s+/).every((c) => {
      if (c === "" || c === "*") return true;
      const m = COMPARATOR.exec(c);
      if (!m) return false;
      const op = m[1] ?? "=";
      const wild = (s: string | undefined) => s === undefined || s === "x" || s === "*";
      const base = parts(`${m[2]}.${m[3] ?? 0}.${m[4] ?? 0}`);
      const d = cmp(v, base);
      switch (op) {
        case ">=":
          return d >= 0;
        case "<=":
          return d <= 0;
        case ">":
          return d > 0;
        case "<":
          return d < 0;
        case "^": {
          const upper: [number, number, number] = base[0] > 0
            ? [base[0] + 1, 0, 0]
            : base[1] > 0
            ? [0, base[1] + 1, 0]
            : [0, 0, base[2] + 1];
          return d >= 0 && cmp(v, upper) < 0;
        }
        case "~": {
          const upper: [number, number, number] = wild(m[3])
            ? [base[0] + 1, 0, 0]
            : [base[0], base[1] + 1, 0];
          return d >= 0 && cmp(v, upper) < 0;
        }
        default: {
          if (wild(m[2])) return true;
          if (wild(m[3])) return v[0] === base[0];
          if (wild(m[4])) return v[0] === base[0] && v[1] === base[1];
          return d === 0;
        }
      }
    })
  );
}
