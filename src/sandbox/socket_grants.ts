import { isAbsolute } from "node:path";
import { assertSafeArgv } from "./compile_sandbox.ts";
import { SandboxError } from "./sandbox_error.ts";

/** The env variable that tells the SDK where its socket is (`PluginSocket`'s). */
export const SOCKET_ENV = "PLUGSCONC_SOCKET";

/**
 * A compiled plugin command with the grants of its protocol socket added: the socket's path to
 * `--allow-read` and `--allow-write`, `unix:<path>` to `--allow-net` (each flag made when the
 * plugin has none). Deno asks all three to connect to a Unix socket; the path is one file in a
 * folder the host made for this process alone (see `PluginSocket`), and none of them reaches
 * anything else. The result passes {@linkcode assertSafeArgv} again.
 *
 * @throws {SandboxError} `SANDBOX_INVARIANT` for a path that is not absolute or holds `,`, NUL or
 *   a line break (it would grant more), or an argv the checks refuse
 */
export function withSocketGrants(argv: readonly string[], socketPath: string): string[] {
  if (!isAbsolute(socketPath) || /[,\0\n\r]/.test(socketPath)) {
    throw new SandboxError(
      "SANDBOX_INVARIANT",
      `refusing to grant the protocol socket ${JSON.stringify(socketPath)}: not a plain ` +
        `absolute path; this is a plugsconc bug, please report it`,
      { details: { socketPath } },
    );
  }
  const add: Record<string, string> = {
    "--allow-read": socketPath,
    "--allow-write": socketPath,
    "--allow-net": `unix:${socketPath}`,
    "--allow-env": SOCKET_ENV,
  };
  const out = argv.slice(0, -1);
  for (const [flag, value] of Object.entries(add)) {
    const at = out.findIndex((a) => a.startsWith(`${flag}=`));
    if (at >= 0) out[at] = `${out[at]},${value}`;
    else out.push(`${flag}=${value}`);
  }
  out.push(argv[argv.length - 1]!);
  assertSafeArgv(out);
  return out;
}
