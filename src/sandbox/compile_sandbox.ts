import { basename, dirname, isAbsolute, join, normalize, resolve } from "node:path";
import { type FilesystemGrant, isInside, type PluginDescriptor } from "../manifest/mod.ts";
import { classifyHost, DENY_RANGES, netEntry, parseHost } from "./_net_host.ts";
import { compileEnv } from "./env_rules.ts";
import { checkProcessGrants, describeProcess } from "./process_rules.ts";
import { SandboxError } from "./sandbox_error.ts";
import type { CompiledSandbox, Refusal, ResolvedFsGrant, SandboxContext } from "./types.ts";

/** Flags every plugin process gets, in this order, right after `run`. */
export const BASE_FLAGS: readonly string[] = Object.freeze([
  "--no-prompt",
  "--no-config",
  "--cached-only",
  "--no-remote",
  "--no-npm",
]);

const SYSTEM_DIRS = ["/proc", "/dev", "/sys"];
const DATA_DIR_VAR = "${DATA_DIR}";
export { DATA_DIR_ENV } from "./env_rules.ts";
const BAD_PATH_CHARS = /[,\0\n\r]/;

function overlaps(a: string, b: string): boolean {
  return isInside(a, b) || isInside(b, a);
}

/**
 * `Deno.realPathSync` of the deepest existing ancestor with the missing rest appended, so a
 * missing leaf under a symlinked folder resolves to where it would really be created; a
 * dangling symlink resolves to its target.
 */
function defaultRealPath(path: string, depth = 0): string {
  const rest: string[] = [];
  let head = path;
  for (;;) {
    try {
      return join(Deno.realPathSync(head), ...rest);
    } catch {
      // missing (or unreadable): try the link itself, then the parent
    }
    let target: string | undefined;
    try {
      if (Deno.lstatSync(head).isSymlink) target = Deno.readLinkSync(head);
    } catch {
      // does not exist at all
    }
    if (target !== undefined && depth < 40) {
      return defaultRealPath(join(resolve(dirname(head), target), ...rest), depth + 1);
    }
    const parent = dirname(head);
    if (parent === head) return path;
    rest.unshift(basename(head));
    head = parent;
  }
}

function defaultIsDirectory(path: string): boolean | undefined {
  try {
    return Deno.statSync(path).isDirectory;
  } catch {
    return undefined;
  }
}

function sortedUnique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort();
}

/** A host-owned path no grant may touch. */
interface Protected {
  readonly what: string;
  readonly path: string;
  readonly real: string;
}

/** Everything the filesystem rules compare against, resolved once. */
interface HostPaths {
  readonly pluginsDir: string;
  readonly dataRoot: string;
  readonly ownDir: string;
  readonly ownData: string;
  readonly roots: readonly string[];
  readonly sharedDataRoots: readonly string[];
  readonly protected: readonly Protected[];
}

function hostPaths(
  plugin: PluginDescriptor,
  ctx: SandboxContext,
  real: (p: string) => string,
): HostPaths {
  const { config } = ctx;
  const pluginsDir = real(config.dirs.plugins);
  const dataRoot = real(config.dirs.data);
  const ownData = real(ctx.dataDir);
  const configured = config.security.allowed_roots.map(real);
  const base = configured.length > 0 ? configured : [pluginsDir, dataRoot];
  const db = config.logging.store.db_file;
  const candidates: [string, string | undefined][] = [
    ["the host config file", ctx.configFile],
    ["the log database", db],
    ["the log database", `${db}-wal`],
    ["the log database", `${db}-shm`],
    ["the log database", `${db}-journal`],
    ["the host log file", config.logging.file.path],
    ["the host's DENO_DIR", ctx.hostDenoDir],
    ["the SDK import map", ctx.importMapPath],
    ["the plugin's DENO_DIR (Deno's own cache)", ctx.denoCacheDir],
    ...(ctx.protectedPaths ?? []).map((p): [string, string] => ["a host-owned path", p]),
  ];
  const prot: Protected[] = [];
  for (const [what, p] of candidates) {
    if (p === undefined || p === "") continue;
    const path = normalize(resolve(p));
    prot.push({ what, path, real: real(path) });
  }
  return {
    pluginsDir,
    dataRoot,
    ownDir: plugin.dir,
    ownData,
    // The plugin's own folder and DATA_DIR are always valid targets (other rules still apply).
    roots: [...base, ...[plugin.dir, ownData].filter((p) => !base.some((r) => isInside(p, r)))],
    // An allowed root the admin put inside dirs.data is a deliberate shared folder.
    sharedDataRoots: configured.filter((r) => r !== dataRoot && isInside(r, dataRoot)),
    protected: prot,
  };
}

interface FsResult {
  readonly grants: ResolvedFsGrant[];
  readonly read: Set<string>;
  readonly write: Set<string>;
}

/** Where the compiler's parts report refusals and warnings. */
interface CompileOut {
  refuse(r: Refusal): void;
  warn(w: string): void;
}

function compileFilesystem(
  plugin: PluginDescriptor,
  ctx: SandboxContext,
  out: CompileOut,
): FsResult {
  const realPath = ctx.realPath ?? defaultRealPath;
  const real = (p: string) => normalize(realPath(normalize(resolve(p))));
  const isDirectory = ctx.isDirectory ?? defaultIsDirectory;
  const strict = ctx.config.security.policy === "strict";
  const host = hostPaths(plugin, ctx, real);
  const result: FsResult = { grants: [], read: new Set(), write: new Set() };

  plugin.manifest.capabilities.filesystem.forEach((g: FilesystemGrant, i) => {
    const at = `capabilities.filesystem[${i}]`;
    const grant = `${g.path} (${g.permissions.join(", ")})`;
    const read = g.permissions.includes("read") || g.permissions.includes("list");
    const write = g.permissions.some((p) => p === "write" || p === "create" || p === "delete");
    const refuse = (reason: string) => out.refuse({ at, grant, reason });

    const declared = g.path;
    if (BAD_PATH_CHARS.test(declared)) {
      return refuse(
        "the path contains ',', NUL or a line break: ',' separates entries of --allow-read and " +
          "--allow-write, so it would grant extra paths; rename the file or folder",
      );
    }
    let absolute: string;
    if (declared === DATA_DIR_VAR || declared.startsWith(`${DATA_DIR_VAR}/`)) {
      absolute = join(ctx.dataDir, declared.slice(DATA_DIR_VAR.length));
    } else if (declared.includes("${")) {
      return refuse("unknown variable: only ${DATA_DIR} (the plugin's data folder) is supported");
    } else if (declared.startsWith("~")) {
      return refuse(
        "'~' is not expanded: use ${DATA_DIR}/..., a path relative to the plugin " +
          "folder, or an absolute path inside security.allowed_roots",
      );
    } else {
      absolute = isAbsolute(declared) ? declared : resolve(plugin.dir, declared);
    }
    const path = normalize(absolute);
    const realp = real(path);
    if (BAD_PATH_CHARS.test(realp)) {
      return refuse(
        `it resolves to ${JSON.stringify(realp)}, which contains ',', NUL or a line break ` +
          "(',' separates flag entries); move the data to a folder without them",
      );
    }
    if (
      [path, realp].some((p) => p === "/" || SYSTEM_DIRS.some((s) => isInside(p, s)))
    ) {
      return refuse(
        `${realp} is the root or a system folder (/proc, /dev, /sys): never granted; grant a ` +
          "folder of your own under ${DATA_DIR}",
      );
    }
    const hit = host.protected.find((p) => overlaps(realp, p.real) || overlaps(path, p.path));
    if (hit !== undefined) {
      return refuse(
        `${realp} is, contains or lies inside ${hit.what} (${hit.real}): never granted to ` +
          "plugins; grant a narrower path such as ${DATA_DIR}/...",
      );
    }
    if (!host.roots.some((r) => isInside(realp, r))) {
      return refuse(
        `${realp} is outside the allowed roots (${host.roots.join(", ")}); keep data under ` +
          "${DATA_DIR}, or ask the host admin to add a folder to security.allowed_roots",
      );
    }
    if (write && (overlaps(realp, host.pluginsDir) || overlaps(realp, host.ownDir))) {
      return refuse(
        `write/create/delete on ${realp} would let the plugin change plugin code ` +
          `(dirs.plugins = ${host.pluginsDir}); write under \${DATA_DIR} instead`,
      );
    }
    if (isInside(host.pluginsDir, realp)) {
      return refuse(
        `${realp} contains every plugin's folder (dirs.plugins = ${host.pluginsDir}), with their ` +
          "code and secrets; a plugin may read only its own folder (use ./ or ./<subfolder>)",
      );
    }
    if (isInside(realp, host.pluginsDir) && !isInside(realp, host.ownDir)) {
      return refuse(
        `${realp} lies in another plugin's folder; a plugin may read only its own folder ` +
          `(${host.ownDir})`,
      );
    }
    if (isInside(host.dataRoot, realp)) {
      return refuse(
        `${realp} contains the host data folder (dirs.data = ${host.dataRoot}: other plugins' ` +
          "data, caches and logs); use ${DATA_DIR}",
      );
    }
    if (
      isInside(realp, host.dataRoot) && !isInside(realp, host.ownData) &&
      !host.sharedDataRoots.some((r) => isInside(realp, r))
    ) {
      return refuse(
        `${realp} lies in the host data folder outside this plugin's own \${DATA_DIR} ` +
          `(${host.ownData}); use \${DATA_DIR}/...`,
      );
    }
    if (!g.recursive) {
      const dir = declared.endsWith("/") || realp === host.ownData || isDirectory(realp);
      if (dir === true) {
        const why = `${realp} is a directory and Deno grants are always recursive`;
        if (strict) {
          return refuse(
            `recursive: false cannot be enforced: ${why}; grant the files one by one, set ` +
              "recursive: true, or ask the host admin for security.policy: permissive",
          );
        }
        out.warn(
          `${at}: recursive: false widened to recursive (policy permissive): ${why}, so ` +
            "everything below it is granted",
        );
      } else if (dir === undefined) {
        out.warn(
          `${at}: ${realp} does not exist yet; recursive: false holds only if it is created as ` +
            "a file (a directory there would be granted recursively)",
        );
      }
    }
    result.grants.push({ at, declared, path: realp, read, write });
    if (read) result.read.add(realp);
    if (write) result.write.add(realp);
  });
  return result;
}

interface NetResult {
  readonly allow: Set<string>;
  readonly deny: string[];
  readonly unstable: boolean;
}

function compileNetwork(
  plugin: PluginDescriptor,
  ctx: SandboxContext,
  out: CompileOut,
): NetResult {
  const { allow_loopback, allow_link_local, policy } = ctx.config.security;
  const { egress, ingress } = plugin.manifest.capabilities.network;
  const allow = new Set<string>();
  let unstable = false;

  egress.forEach((rule, i) => {
    if (rule.protocol === "udp") unstable = true;
    rule.hosts.forEach((raw, j) => {
      const at = `capabilities.network.egress[${i}].hosts[${j}]`;
      const grant = `${raw} ports ${rule.ports.join(", ")}`;
      const parsed = parseHost(raw);
      if (typeof parsed === "string") return out.refuse({ at, grant, reason: parsed });
      const cls = classifyHost(parsed);
      if (cls === "loopback" && !allow_loopback) {
        return out.refuse({
          at,
          grant,
          reason: `${parsed.host} is a loopback address, where the host's own services listen; ` +
            "the host admin must set security.allow_loopback: true to allow it",
        });
      }
      if ((cls === "link-local" || cls === "metadata") && !allow_link_local) {
        return out.refuse({
          at,
          grant,
          reason: `${parsed.host} is a ${cls} address${
            cls === "metadata" ? " (cloud instance metadata: credentials)" : ""
          }; the host admin must set security.allow_link_local: true to allow it`,
        });
      }
      for (const port of rule.ports) allow.add(netEntry(parsed, port));
    });
  });

  ingress.forEach((rule, i) => {
    if (rule.allowed_origins.length > 0) {
      const at = `capabilities.network.ingress[${i}].allowed_origins`;
      const why = "Deno cannot restrict peers by origin: anyone who can reach the port can connect";
      if (policy === "strict") {
        return out.refuse({
          at,
          grant: rule.allowed_origins.join(", "),
          reason: `${why}; remove allowed_origins and check peers in the plugin, or ask the ` +
            "host admin for security.policy: permissive",
        });
      }
      out.warn(`${at}: ignored (policy permissive): ${why}`);
    }
    if (rule.protocol === "udp") unstable = true;
    // Listening needs the bind address itself; Deno.listen binds 0.0.0.0 by default.
    for (const port of rule.ports) allow.add(`0.0.0.0:${port}`);
  });

  // Deny ranges go out even with no egress grant (defence in depth); a class the admin allows
  // gets no deny entry, since a deny CIDR would also block the allowed hosts.
  const deny = [
    ...(allow_loopback ? [] : DENY_RANGES.loopback),
    ...(allow_link_local ? [] : DENY_RANGES["link-local"]),
  ];
  return { allow, deny: sortedUnique(deny), unstable };
}

/**
 * The permission compiler: turns a plugin's manifest and the host config into the exact
 * `deno run` arguments and environment of its process. Pure, apart from `ctx.realPath` and
 * `ctx.isDirectory` (defaults read the filesystem).
 *
 * A plugin with any entry in `refusals` must not start ({@linkcode throwIfRefused}); the
 * argv is still complete, for `plugins inspect`.
 *
 * @example
 * ```ts
 * const compiled = compileSandbox(plugin, {
 *   config,
 *   importMapPath: "/srv/plugsconc/data/sdk/import_map.json",
 *   dataDir: "/srv/plugsconc/data/plugins/cat",
 *   denoCacheDir: "/srv/plugsconc/data/cache/cat",
 * });
 * throwIfRefused(compiled);
 * new Deno.Command(Deno.execPath(), { args: [...compiled.argv], env: compiled.env, clearEnv: true });
 * ```
 * @throws {RangeError} when a path of `ctx` is not absolute
 * @throws {SandboxError} `SANDBOX_INVARIANT` if the result would hold a forbidden flag
 */
export function compileSandbox(plugin: PluginDescriptor, ctx: SandboxContext): CompiledSandbox {
  for (const key of ["importMapPath", "dataDir", "denoCacheDir"] as const) {
    if (!isAbsolute(ctx[key]) || /[\0\n\r]/.test(ctx[key])) {
      throw new RangeError(`SandboxContext.${key} must be an absolute path: ${ctx[key]}`);
    }
  }
  if (!isAbsolute(plugin.entrypoint)) {
    throw new RangeError(`plugin entrypoint must be absolute: ${plugin.entrypoint}`);
  }
  const warnings: string[] = [];
  const refusals: Refusal[] = [];
  const out = {
    refuse: (r: Refusal) => void refusals.push(r),
    warn: (w: string) => void warnings.push(w),
  };
  // In manifest order, so refusals read top to bottom like the file.
  const fs = compileFilesystem(plugin, ctx, out);
  const net = compileNetwork(plugin, ctx, out);
  const { env, names } = compileEnv(plugin, ctx, out);
  const commands = checkProcessGrants(plugin, ctx, out);
  const process = describeProcess(plugin);

  const mb = ctx.config.plugins[plugin.name]?.memory_mb ??
    plugin.manifest.resources.memory_mb ?? ctx.config.defaults.memory_mb;
  const read = sortedUnique(fs.read);
  const write = sortedUnique(fs.write);
  const allowNet = sortedUnique(net.allow);
  const argv = [
    "run",
    ...BASE_FLAGS,
    `--import-map=${ctx.importMapPath}`,
    `--v8-flags=--max-old-space-size=${mb}`,
    ...(read.length > 0 ? [`--allow-read=${read.join(",")}`] : []),
    ...(write.length > 0 ? [`--allow-write=${write.join(",")}`] : []),
    ...(allowNet.length > 0 ? [`--allow-net=${allowNet.join(",")}`] : []),
    ...(net.deny.length > 0 ? [`--deny-net=${net.deny.join(",")}`] : []),
    `--allow-env=${names.join(",")}`,
    ...(net.unstable ? ["--unstable-net"] : []),
    plugin.entrypoint,
  ];
  assertSafeArgv(argv);
  return Object.freeze({
    argv: Object.freeze(argv),
    env: Object.freeze(env),
    warnings: Object.freeze(warnings),
    refusals: Object.freeze(refusals),
    fs: Object.freeze(fs.grants),
    commands: Object.freeze(commands),
    grants: Object.freeze({
      read: Object.freeze(read),
      write: Object.freeze(write),
      net: Object.freeze(allowNet),
      env: Object.freeze(names),
      process: Object.freeze(process),
      plugins: Object.freeze(
        plugin.manifest.capabilities.plugins.flatMap((t) => t.methods.map((m) => `${t.name}.${m}`)),
      ),
    }),
    plugin,
  });
}

// Only for a clearer message: the allow-list below rejects these (and everything else) anyway.
const FORBIDDEN_FLAG = /^(?:-[A-Za-z]+|--allow-(?:all|run|ffi|sys|import|hrtime))(?:=|$)/;
const ALWAYS = new Set(BASE_FLAGS);
const OPTIONAL_FIXED = new Set(["--unstable-net"]);
const VALUED: readonly RegExp[] = [
  /^--import-map=\/[^\0\n\r]*$/,
  /^--v8-flags=--max-old-space-size=[1-9][0-9]{0,5}$/,
  /^--(?:allow-read|allow-write|allow-net|deny-net|allow-env)=[^,\0\n\r]+(?:,[^,\0\n\r]+)*$/,
];

/**
 * The compiler's last line of defence, also usable right before spawning: every argument must
 * be one the compiler is allowed to emit (`run`, {@linkcode BASE_FLAGS}, one each of
 * `--import-map`, `--v8-flags=--max-old-space-size=N`, `--allow-read|write|net|env`,
 * `--deny-net`, `--unstable-net`) followed by one absolute entrypoint. Anything else, such as
 * `--allow-all`, `-A`, `--allow-run`, `--allow-ffi`, `--allow-sys`, `--allow-import` or
 * `--allow-hrtime`, throws.
 *
 * @throws {SandboxError} `SANDBOX_INVARIANT`
 */
export function assertSafeArgv(argv: readonly string[]): void {
  const fail = (why: string): never => {
    throw new SandboxError(
      "SANDBOX_INVARIANT",
      `refusing to build a plugin command: ${why}; this is a plugsconc bug, please report it`,
      { details: { argv: [...argv] } },
    );
  };
  if (argv[0] !== "run") fail(`the first argument must be "run", got ${JSON.stringify(argv[0])}`);
  const entry = argv[argv.length - 1];
  if (argv.length < 2 || entry === undefined || !isAbsolute(entry) || /[\0\n\r]/.test(entry)) {
    fail(`the last argument must be the absolute entrypoint, got ${JSON.stringify(entry)}`);
  }
  const seen = new Set<string>();
  for (const arg of argv.slice(1, -1)) {
    if (FORBIDDEN_FLAG.test(arg)) fail(`forbidden flag ${JSON.stringify(arg)}`);
    const name = arg.split("=", 1)[0]!;
    if (seen.has(name)) fail(`flag ${name} appears twice`);
    seen.add(name);
    if (ALWAYS.has(arg) || OPTIONAL_FIXED.has(arg)) continue;
    if (!VALUED.some((re) => re.test(arg))) fail(`unexpected argument ${JSON.stringify(arg)}`);
  }
  for (const flag of ALWAYS) if (!seen.has(flag)) fail(`missing ${flag}`);
  if (!seen.has("--import-map")) fail("missing --import-map");
  if (!seen.has("--v8-flags")) fail("missing --v8-flags=--max-old-space-size");
}
