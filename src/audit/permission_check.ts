import { isAbsolute, resolve } from "node:path";
// Deno grants are recursive: a check is granted when its path is a root or below one.
import { isInside } from "../manifest/mod.ts";

/**
 * One permission check as Deno 2.9 writes it to `DENO_AUDIT_PERMISSIONS`:
 * `{"v":1,"datetime":"2026-12-04T00:46:41Z","permission":"read","value":"/etc/hostname"}`.
 * Deno writes a line for every check, granted or denied, and does not say which: the host
 * decides that from the grants it gave ({@linkcode GrantSet}). `value` is what the API got
 * (a relative path stays relative; `null` for `Deno.env.toObject()`).
 */
export interface PermissionCheck {
  readonly permission: string;
  readonly value: string | null;
  /** Milliseconds since the epoch (Deno writes whole seconds). */
  readonly at: number;
}

/** Longest line parsed; longer ones are counted as malformed. */
export const MAX_CHECK_LINE = 8192;

/** Parses one line; `undefined` for anything that is not a check (never throws). */
export function parsePermissionCheck(line: string): PermissionCheck | undefined {
  if (line.length === 0 || line.length > MAX_CHECK_LINE) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.permission !== "string" || o.permission.length > 32) return undefined;
  if (o.value !== null && typeof o.value !== "string") return undefined;
  const at = typeof o.datetime === "string" ? Date.parse(o.datetime) : NaN;
  return { permission: o.permission, value: o.value, at: Number.isFinite(at) ? at : Date.now() };
}

/** The grants a plugin process runs with, as given to Deno. */
export interface GrantSet {
  /** Absolute paths of `--allow-read` / `--allow-write`. */
  readonly read: readonly string[];
  readonly write: readonly string[];
  /** `host:port` entries of `--allow-net`. */
  readonly net: readonly string[];
  /** Names of `--allow-env`. */
  readonly env: readonly string[];
  /** The plugin's working directory: relative paths in checks resolve against it. */
  readonly cwd: string;
}

/** A check normalised for counting: paths absolute, `granted` decided from the grants. */
export interface ClassifiedCheck {
  readonly permission: string;
  readonly value: string;
  readonly granted: boolean;
}

/**
 * Decides whether Deno granted `check` under `grants`, and normalises its value. Returns
 * `undefined` for checks that are duplicates of another line (`fetch` writes the URL, then
 * `host:port`; only the latter is counted).
 */
export function classifyCheck(
  check: PermissionCheck,
  grants: GrantSet,
): ClassifiedCheck | undefined {
  const { permission } = check;
  const raw = check.value;
  switch (permission) {
    case "read":
    case "write": {
      if (raw === null) return { permission, value: "*", granted: false };
      const path = isAbsolute(raw) ? resolve(raw) : resolve(grants.cwd, raw);
      const roots = permission === "read" ? grants.read : grants.write;
      return { permission, value: path, granted: roots.some((r) => isInside(path, r)) };
    }
    case "net": {
      if (raw !== null && raw.includes("://")) return undefined;
      const value = raw ?? "*";
      return {
        permission,
        value,
        granted: grants.net.some((g) =>
          g === value || (!/:\d+$/.test(g) && value.startsWith(g + ":"))
        ),
      };
    }
    case "env": {
      const value = raw ?? "*";
      return { permission, value, granted: raw !== null && grants.env.includes(raw) };
    }
    default:
      // run, ffi, sys, import: the host never grants them.
      return { permission, value: raw ?? "*", granted: false };
  }
}
