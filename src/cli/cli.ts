import { Command, CommanderError } from "commander";
import { VERSION } from "../version.ts";
import { registerConfigCheck } from "./config_check.ts";
import type { CliContext, GlobalOptions } from "./context.ts";
import { EXIT, exitCodeFor, formatError } from "./exit_codes.ts";
import type { CliIo } from "./io.ts";
import { registerAudit } from "./audit.ts";
import { registerCall } from "./call.ts";
import { registerLogs } from "./logs.ts";
import { registerNew } from "./new_plugin.ts";
import { registerPlugins } from "./plugins.ts";
import { registerRun } from "./run.ts";
import { registerServe } from "./serve.ts";

/** Builds the commander program; every command writes through `io`. */
export function buildProgram(io: CliIo): Command {
  const program = new Command();
  const ctx: CliContext = {
    io,
    globals(): GlobalOptions {
      const o = program.opts<{ config: string; verbose?: boolean }>();
      return {
        config: o.config,
        configExplicit: program.getOptionValueSource("config") !== "default",
        verbose: o.verbose ?? false,
      };
    },
  };
  program
    .name("plugsconc")
    .description("Run third-party Deno plugins, each in a sandbox compiled from its manifest.")
    .version(VERSION, "-V, --version", "print the plugsconc version")
    .option("-c, --config <path>", "host config file", "config.yaml")
    .option("-v, --verbose", "print error cause chains and stacks")
    .exitOverride()
    .showHelpAfterError("(add --help for usage)")
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  registerRun(program, ctx);
  registerServe(program, ctx);
  registerCall(program, ctx);
  const plugins = registerPlugins(program, ctx);
  const logs = registerLogs(program, ctx);
  const config = program.command("config").description("work with config files");
  registerConfigCheck(config, ctx);
  const create = registerNew(program, ctx);
  const audit = registerAudit(program, ctx);
  for (
    const cmd of [
      program,
      ...program.commands,
      ...config.commands,
      ...plugins.commands,
      ...logs.commands,
      ...create.commands,
      ...audit.commands,
    ]
  ) {
    cmd.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  }
  return program;
}

/**
 * Runs the CLI in-process and returns the exit code (0 ok, 1 runtime failure, 2 usage or
 * configuration error). Never calls `Deno.exit`, so tests can call it directly.
 *
 * @example
 * ```ts
 * const code = await runCli(["config", "check", "config.yaml"], memoryIo());
 * ```
 */
export async function runCli(args: readonly string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...args], { from: "user" });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already written its message (or the help/version text).
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const verbose = program.opts<{ verbose?: boolean }>().verbose ?? false;
    io.err(formatError(e, verbose));
    return exitCodeFor(e);
  }
}
