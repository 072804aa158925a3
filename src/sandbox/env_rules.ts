import type { PluginDescriptor } from "../manifest/mod.ts";
import { DEFAULT_HANDSHAKE } from "../sdk/handshake.ts";
import type { Refusal, SandboxContext } from "./types.ts";

/** The env var that tells a plugin with a `${DATA_DIR}` grant where its data folder is. */
export const DATA_DIR_ENV = "PLUGSCONC_DATA_DIR";
const DATA_DIR_VAR = "${DATA_DIR}";

/**
 * Env names a manifest may never declare, whatever value the host config gives: they change
 * how Deno or the dynamic loader behave before any permission applies (for example
 * `DENO_PERMISSION_BROKER_PATH` disables every flag, `LD_PRELOAD` loads native code, and
 * `SSLKEYLOGFILE` makes Deno write TLS secrets to a file without `--allow-write`).
 */
const REFUSED_ENV_PREFIXES = ["DENO_", "LD_", "DYLD_"];
const REFUSED_ENV_NAMES = new Set(["SSLKEYLOGFILE", "GLIBC_TUNABLES"]);
/** A handshake cookie name that no runtime, loader or library reads. */
const COOKIE_KEY = /^(?!.*_PATH$)[A-Z][A-Z0-9_]*(?:PLUGIN|COOKIE|MAGIC)[A-Z0-9_]*$/;
const DEFAULT_COOKIE_KEY = DEFAULT_HANDSHAKE.magic_cookie_key;

function sortedUnique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}

/**
 * The plugin's environment (with `clearEnv`): the handshake cookie, `DENO_DIR`, `NO_COLOR`,
 * `PLUGSCONC_DATA_DIR` for a `${DATA_DIR}` grant, and the declared names with the values the
 * host config gives; and the names for `--allow-env`. Names that change how Deno or the loader
 * run are refused.
 */
export function compileEnv(
  plugin: PluginDescriptor,
  ctx: SandboxContext,
  out: { refuse(r: Refusal): void; warn(w: string): void },
): { env: Record<string, string>; names: string[] } {
  const { magic_cookie_key: cookieKey, magic_cookie_value: cookieValue } =
    plugin.manifest.handshake;
  const hostSet = new Set([cookieKey, "DENO_DIR", "NO_COLOR", DATA_DIR_ENV]);
  // The cookie's value comes from the manifest, so its name must not be one anything reads:
  // LD_PRELOAD=./evil.so would load the plugin's native code before any permission applies.
  if (!COOKIE_KEY.test(cookieKey) || REFUSED_ENV_PREFIXES.some((p) => cookieKey.startsWith(p))) {
    out.refuse({
      at: "handshake.magic_cookie_key",
      grant: cookieKey,
      reason: "the cookie must be the plugin's own variable: upper case, containing PLUGIN, " +
        "COOKIE or MAGIC, not ending in _PATH, and not DENO_*, LD_* or DYLD_* (its value comes " +
        `from the manifest); e.g. ACME_PLUGIN, or leave the default ${DEFAULT_COOKIE_KEY}`,
    });
  }
  const values = ctx.config.plugins[plugin.name]?.env ?? {};
  const env: Record<string, string> = {
    [cookieKey]: cookieValue,
    DENO_DIR: ctx.denoCacheDir,
    NO_COLOR: "1",
  };
  const names = new Set([cookieKey]);
  // A plugin with a ${DATA_DIR} grant learns where that is (it cannot guess the host's layout).
  const usesDataDir = plugin.manifest.capabilities.filesystem.some((g) =>
    g.path === DATA_DIR_VAR || g.path.startsWith(`${DATA_DIR_VAR}/`)
  );
  if (usesDataDir) {
    env[DATA_DIR_ENV] = ctx.dataDir;
    names.add(DATA_DIR_ENV);
  }
  const declared = new Set(plugin.manifest.capabilities.env);
  plugin.manifest.capabilities.env.forEach((name, i) => {
    const at = `capabilities.env[${i}]`;
    const upper = name.toUpperCase();
    if (REFUSED_ENV_PREFIXES.some((p) => upper.startsWith(p)) || REFUSED_ENV_NAMES.has(upper)) {
      return out.refuse({
        at,
        grant: name,
        reason: "DENO_*, LD_*, DYLD_*, SSLKEYLOGFILE and GLIBC_TUNABLES change how Deno or the " +
          "loader run before any permission applies; remove it from capabilities.env",
      });
    }
    if (hostSet.has(name)) {
      return out.refuse({
        at,
        grant: name,
        reason: `${name} is set by the host (handshake cookie, DENO_DIR, NO_COLOR, ` +
          `${DATA_DIR_ENV}); remove it ` +
          "from capabilities.env",
      });
    }
    const value = Object.hasOwn(values, name) ? values[name] : undefined;
    if (value === undefined) {
      out.warn(
        `declared env ${name} has no value in plugins.${plugin.name}.env; it is unset`,
      );
    } else if (value.includes("\0")) {
      return out.refuse({
        at: `plugins.${plugin.name}.env.${name}`,
        grant: name,
        reason: "the value contains a NUL character, which no environment can hold; fix the " +
          "host config",
      });
    } else {
      env[name] = value;
    }
    // Readable even when unset: with a cleared env that reveals nothing, and plugin code can
    // fall back to a default instead of failing with NotCapable.
    names.add(name);
  });
  for (const name of Object.keys(values)) {
    if (!declared.has(name)) {
      out.warn(
        `plugins.${plugin.name}.env.${name} is not declared in the manifest's capabilities.env; ` +
          "it is not passed",
      );
    }
  }
  return { env, names: sortedUnique(names) };
}
