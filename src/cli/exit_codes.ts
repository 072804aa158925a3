import { ConfigError } from "../config/mod.ts";
import { causeChain, PlugsconcError } from "../errors/mod.ts";
import { InvalidParamsError, PluginConfigError } from "../host/mod.ts";
import { PluginNotFoundError, PluginUnavailableError } from "../runtime/mod.ts";
import { SandboxError } from "../sandbox/mod.ts";
import { ServerError } from "../server/mod.ts";

/** The CLI was used wrongly (unknown command, bad option or argument). */
export class UsageError extends PlugsconcError {
  /** @param message what was wrong and how to use it instead */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("USAGE", message, options);
  }
}

/** Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error. */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/**
 * Error classes whose failures are the user's input (exit 2): usage, config and manifest
 * errors (`ManifestError` extends `ConfigError`), refused sandboxes, unknown plugins or
 * methods, params that fail their schema, plugin config that fails its schema. Later domains can add theirs with {@link registerUsageErrorClass}.
 */
const usageClasses: (abstract new (...args: never[]) => Error)[] = [
  UsageError,
  ConfigError,
  SandboxError,
  PluginNotFoundError,
  InvalidParamsError,
  PluginConfigError,
];

/** Marks an error class as a usage/configuration error (exit code 2). */
export function registerUsageErrorClass(cls: abstract new (...args: never[]) => Error): void {
  if (!usageClasses.includes(cls)) usageClasses.push(cls);
}

/**
 * Maps a thrown value to the process exit code. A plugin unavailable because its manifest,
 * sandbox or dependencies were refused at start is the user's input too (exit 2).
 */
export function exitCodeFor(error: unknown): number {
  const isUsage = (e: unknown) => usageClasses.some((cls) => e instanceof cls);
  if (isUsage(error)) return EXIT.usage;
  if (error instanceof PluginUnavailableError && isUsage(error.cause)) return EXIT.usage;
  // A gateway that may not start as configured (no token off loopback, a bad address).
  if (error instanceof ServerError && error.code !== "SERVER_ADDR_IN_USE") return EXIT.usage;
  return EXIT.failure;
}

/** One line per error (`error: message`), plus the cause chain and stacks when verbose. */
export function formatError(error: unknown, verbose: boolean): string {
  const chain = causeChain(error);
  const lines: string[] = [];
  chain.forEach((e, i) => {
    if (i > 0 && !verbose) return;
    const prefix = i === 0 ? "error" : "caused by";
    if (e instanceof PlugsconcError) lines.push(`${prefix} [${e.code}]: ${e.message}`);
    else if (e instanceof Error) {
      lines.push(`${prefix}: ${i === 0 && !verbose ? "internal error: " : ""}${e.message}`);
      if (verbose && e.stack) lines.push(e.stack.split("\n").slice(1).join("\n"));
    } else lines.push(`${prefix}: ${String(e)}`);
  });
  if (!verbose && chain.length > 1) lines.push("(run with --verbose for the cause chain)");
  return lines.join("\n") + "\n";
}
