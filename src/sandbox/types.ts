import type { Config } from "../config/mod.ts";
import type { PluginDescriptor } from "../manifest/mod.ts";
import type { CommandIdentity } from "./command_identity.ts";

/** Host facts the permission compiler needs besides the manifest and config. */
export interface SandboxContext {
  /** The validated host config (paths absolute). */
  readonly config: Config;
  /** The host config file, if any: never grantable. */
  readonly configFile?: string;
  /** The import map that maps only `plugsconc/sdk` (absolute path). */
  readonly importMapPath: string;
  /** The plugin's private data folder (`${DATA_DIR}`), created by the host. */
  readonly dataDir: string;
  /** The plugin's own DENO_DIR (transpile cache, localStorage), owned by the host. */
  readonly denoCacheDir: string;
  /** The host's DENO_DIR (never grantable). */
  readonly hostDenoDir?: string;
  /**
   * Resolves symlinks; default: `Deno.realPathSync` of the deepest existing ancestor, with the
   * missing rest appended (so a missing leaf under a symlinked folder still resolves).
   */
  readonly realPath?: (path: string) => string;
  /**
   * Whether `path` is a directory (`undefined`: it does not exist); default: `Deno.statSync`.
   * Used for `recursive: false`.
   */
  readonly isDirectory?: (path: string) => boolean | undefined;
  /** More host-owned paths that are never grantable (the SDK file, the host binary, ...). */
  readonly protectedPaths?: readonly string[];
  /**
   * Identifies a process grant's command by the file it is; default
   * {@linkcode identifyCommand} (reads the filesystem). A string says why it cannot run.
   */
  readonly identifyCommand?: (command: string) => CommandIdentity | string;
}

/**
 * A process grant's command pinned to the file it resolved to when the sandbox was compiled:
 * the process service runs that file, and refuses if the path names another file by then.
 */
export interface ResolvedCommand {
  /** As the manifest writes it. */
  readonly command: string;
  /** The file it resolved to (symlinks followed). */
  readonly real: string;
  readonly dev: number;
  readonly ino: number;
  /** Why it is a launcher, if it is one (granted by the operator or under permissive). */
  readonly launcher?: string;
  /** Whether the host operator lists it under `security.process.allow`. */
  readonly listed: boolean;
}

/** One filesystem grant after resolution. */
export interface ResolvedFsGrant {
  /** Manifest path of the grant, e.g. `capabilities.filesystem[0]`. */
  readonly at: string;
  /** As written in the manifest. */
  readonly declared: string;
  /** Absolute, symlink-resolved path given to Deno. */
  readonly path: string;
  readonly read: boolean;
  readonly write: boolean;
}

/** A grant the compiler would not give, and why (code `GRANT_REFUSED`). */
export interface Refusal {
  /** Manifest path of the grant, e.g. `capabilities.filesystem[1]`. */
  readonly at: string;
  /** What was asked for. */
  readonly grant: string;
  /** Why it is refused and what to do instead. */
  readonly reason: string;
}

/** The output of the permission compiler. */
export interface CompiledSandbox {
  /** Arguments after the deno binary: `["run", ...flags, entrypoint]`. */
  readonly argv: readonly string[];
  /** The child's whole environment (spawned with `clearEnv: true`). */
  readonly env: Readonly<Record<string, string>>;
  /** Grants widened (permissive policy), env names without values, and similar. */
  readonly warnings: readonly string[];
  /** Grants refused; a plugin with any refusal must not start. */
  readonly refusals: readonly Refusal[];
  /** The process grants' commands, each pinned to its file (refused ones left out). */
  readonly commands: readonly ResolvedCommand[];
  /** The filesystem grants given (refused ones left out), for the symlink check. */
  readonly fs: readonly ResolvedFsGrant[];
  /** What was granted, for `plugins inspect` and `run`. */
  readonly grants: {
    readonly read: readonly string[];
    readonly write: readonly string[];
    readonly net: readonly string[];
    readonly env: readonly string[];
    readonly process: readonly string[];
    /** Other plugins' methods it may call through the host, as `plugin.method`. */
    readonly plugins: readonly string[];
  };
  /** The plugin this was compiled for. */
  readonly plugin: PluginDescriptor;
}
