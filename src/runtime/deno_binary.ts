import { PlugsconcError } from "../errors/mod.ts";

/** Whether this process is a `deno compile`d binary rather than `deno` itself. */
export function isCompiledBinary(): boolean {
  return Deno.build.standalone === true ||
    !/(^|[\\/])deno(\.exe)?$/i.test(Deno.execPath());
}

/**
 * The `deno` binary plugins run with: `runtime.deno` from the config, else this Deno (when
 * not compiled), else `DENO_BIN`, else `deno` on PATH.
 *
 * @throws {PlugsconcError} `DENO_NOT_FOUND` when none exists
 */
export function findDenoBinary(configured?: string): string {
  if (configured !== undefined) return requireFile(configured, "runtime.deno in the config");
  if (!isCompiledBinary()) return Deno.execPath();
  const fromEnv = Deno.env.get("DENO_BIN");
  if (fromEnv) return requireFile(fromEnv, "DENO_BIN");
  for (const dir of (Deno.env.get("PATH") ?? "").split(Deno.build.os === "windows" ? ";" : ":")) {
    if (dir === "") continue;
    const candidate = `${dir}/deno${Deno.build.os === "windows" ? ".exe" : ""}`;
    try {
      if (Deno.statSync(candidate).isFile) return candidate;
    } catch { /* not here */ }
  }
  throw new PlugsconcError(
    "DENO_NOT_FOUND",
    "plugins run with Deno, and none was found: set runtime.deno in the config, or DENO_BIN, " +
      "or put deno on PATH (npm install -g deno@2.9.6)",
  );
}

function requireFile(path: string, from: string): string {
  try {
    if (Deno.statSync(path).isFile) return path;
  } catch { /* fall through */ }
  throw new PlugsconcError("DENO_NOT_FOUND", `${from} names ${path}, which is not a file`);
}

function linuxTool(name: string): string | undefined {
  if (Deno.build.os !== "linux") return undefined;
  for (const dir of ["/usr/bin", "/bin", "/usr/sbin"]) {
    try {
      if (Deno.statSync(`${dir}/${name}`).isFile) return `${dir}/${name}`;
    } catch { /* next */ }
  }
  return undefined;
}

/** `setpriv` when it exists (Linux), so plugins die with the host even on SIGKILL. */
export function findSetpriv(): string | undefined {
  return linuxTool("setpriv");
}

/**
 * `setsid` when it exists (Linux), so that each child of the process service leads its own
 * process group and a kill reaches its grandchildren too.
 */
export function findSetsid(): string | undefined {
  return linuxTool("setsid");
}
