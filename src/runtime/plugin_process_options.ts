import type { RpcHandler } from "../rpc/mod.ts";
import type { LogBudget } from "./log_budget.ts";
import type { PluginSocket } from "./plugin_socket.ts";

/** How to start one plugin process. */
export interface PluginProcessOptions {
  /** Plugin name (log category, error messages). */
  readonly name: string;
  /** Program to execute (deno, or setpriv in front of it). */
  readonly bin: string;
  /** Its arguments. */
  readonly args: readonly string[];
  /** The child's whole environment (spawned with `clearEnv`). */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory (the plugin folder). */
  readonly cwd: string;
  /** The protocol version the manifest declares. */
  readonly protocolVersion: number;
  /** The manifest's version, compared with the one the plugin announces. */
  readonly version?: string;
  /** How long to wait for `$/ready`. */
  readonly startTimeoutMs: number;
  /** Longest accepted stdout line. */
  readonly maxLineBytes: number;
  /** Grace period of each stop step. */
  readonly stopGraceMs: number;
  /**
   * The plugin's Unix socket (its path in `env`, its grants in `args`): when the plugin
   * connects, the protocol runs over it instead of stdin/stdout. Closed (and its folder removed)
   * when the process exits. Default: stdio only.
   */
  readonly socket?: PluginSocket;
  /** Host services the plugin may call (`host/...`). */
  readonly handlers?: Readonly<Record<string, RpcHandler>>;
  /**
   * Keep each call's chain, deadline and end while it is in flight (`callContext(id)`), for
   * the plugin's own calls to other plugins. Default `false` (nothing kept per call).
   */
  readonly keepCallContexts?: boolean;
  /** Start-up is abandoned (and the process killed) when this aborts. */
  readonly signal?: AbortSignal;
  /**
   * Runs once the process has exited, before `exited` resolves: releases what the host gave
   * it (the children its process service started, ...). Its errors are logged.
   */
  readonly onExit?: () => void | Promise<void>;
  /**
   * The plugin's log budget, shared by its instances and restarts (the host makes one per
   * plugin). Default: one of this process alone, with the default rates.
   */
  readonly logBudget?: LogBudget;
  /**
   * Sent as `$/configure` after `$/ready`, before the process counts as ready: the plugin's
   * config and the schemas its SDK checks results (and chunks) against. Default: nothing sent.
   */
  readonly configure?: {
    readonly config?: unknown;
    readonly results?: Readonly<Record<string, unknown>>;
    readonly chunks?: Readonly<Record<string, unknown>>;
  };
}

/** What the plugin announced in `$/ready`. */
export interface ReadyInfo {
  readonly protocol: number;
  readonly methods: readonly string[];
  /** The name and version the plugin gave `serve()`, when it gave them. */
  readonly name?: string;
  readonly version?: string;
}

/** How the process ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: string | null;
  /** Last stderr lines. */
  readonly stderr: readonly string[];
  /** Whether the host asked it to stop. */
  readonly requested: boolean;
}
