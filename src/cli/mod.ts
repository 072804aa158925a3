/**
 * The command-line interface: one file per command; `runCli` runs it in-process.
 *
 * @module
 */
export { buildProgram, runCli } from "./cli.ts";
export type { CliContext, GlobalOptions } from "./context.ts";
export {
  EXIT,
  exitCodeFor,
  formatError,
  registerUsageErrorClass,
  UsageError,
} from "./exit_codes.ts";
export { type CliIo, memoryIo, processIo } from "./io.ts";
