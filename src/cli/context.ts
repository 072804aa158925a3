import type { CliIo } from "./io.ts";

/** What every command gets: where to write and the global options. */
export interface CliContext {
  readonly io: CliIo;
  /** Global options, read after parsing. */
  globals(): GlobalOptions;
}

/** Options accepted before any command. */
export interface GlobalOptions {
  /** Config file (`--config`, default `config.yaml`). */
  config: string;
  /** Whether `--config` was given explicitly (a missing explicit file is an error). */
  configExplicit: boolean;
  /** Print cause chains and stacks. */
  verbose: boolean;
}
