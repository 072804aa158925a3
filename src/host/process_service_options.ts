import type { ProcessCapability } from "../manifest/mod.ts";
import type { ResolvedCommand } from "../sandbox/mod.ts";

/** Options of `ProcessService`. */
export interface ProcessServiceOptions {
  /** The plugin the children belong to (named in errors and audit records). */
  readonly plugin: string;
  /** The manifest's `capabilities.process`: what may be run, and whether children may be signalled. */
  readonly capabilities: readonly ProcessCapability[];
  /**
   * Working directory and `HOME` of every child. The host gives a folder of its own that the
   * plugin cannot write: programs read configuration (and so code) from their working
   * directory and `HOME` (`.gitconfig`, `.curlrc`, `.wgetrc`, a `Makefile`, Python modules).
   */
  readonly cwd: string;
  /**
   * The plugin's private data folder, which `${DATA_DIR}/*` arguments must lie in.
   * @default cwd
   */
  readonly dataDir?: string;
  /**
   * The granted commands as the sandbox compiler identified them at start
   * (`CompiledSandbox.commands`): each spawn runs that very file, and a path that names
   * another file by then (or a command not in the list) is refused. Without it, commands are
   * checked only as they are at the spawn.
   */
  readonly commands?: readonly ResolvedCommand[];
  /**
   * Refuse `stdin` unless the command is one the host operator listed (its pin says `listed`):
   * what the plugin writes to an interpreter's stdin is a script (security.policy strict).
   * @default false
   */
  readonly stdinNeedsListing?: boolean;
  /**
   * Give each child a new empty folder under `cwd` as its working directory and `HOME`,
   * removed when it ends, so that what one child writes there cannot steer the next.
   * @default false
   */
  readonly freshWorkdir?: boolean;
  /**
   * Folders a command may not live in: the plugin may write there (plugin folders, data
   * folders), and a command there would run its own code outside the sandbox.
   * @default [cwd, dataDir]
   */
  readonly forbiddenRoots?: readonly string[];
  /**
   * The children's environment besides `PATH` and `HOME` (the host's own environment is never
   * passed on); a `PATH` or `HOME` here replaces the default.
   * @default {}
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Programs put in front of the command, e.g. `["/usr/bin/setsid", "/usr/bin/setpriv",
   * "--pdeathsig", "KILL", "--"]`, so that children die with the host.
   * @default []
   */
  readonly prefix?: readonly string[];
  /**
   * Whether each child leads its own process group (the prefix starts with `setsid`): then
   * signals go to the whole group, and what a child leaves running is killed when it exits.
   * @default false
   */
  readonly processGroups?: boolean;
  /**
   * How many children (running, or finished and not yet waited for) the plugin may have.
   * @default 16
   */
  readonly maxChildren?: number;
  /**
   * How many `host/process.*` requests of the plugin may be in progress at once.
   * @default 64
   */
  readonly maxRequests?: number;
  /**
   * Bytes kept of each child's stdout and of its stderr; past that the pipe is closed (the
   * child gets SIGPIPE/EPIPE, as with `| head -c`).
   * @default 1 MiB
   */
  readonly maxOutputBytes?: number;
}
