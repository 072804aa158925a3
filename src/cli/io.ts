/** Where a CLI command writes, and how it is stopped (tests pass their own). */
export interface CliIo {
  /** Writes to standard output (results: JSON, tables). */
  out(text: string): void;
  /** Writes to standard error (messages, errors). */
  err(text: string): void;
  /** Whether standard output is a terminal (human formatting, colors). */
  readonly isTerminal: boolean;
  /** Aborted when the command should stop (Ctrl-C for `run`). */
  readonly signal?: AbortSignal;
}

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

/** The process's real stdout/stderr. */
export function processIo(signal?: AbortSignal): CliIo {
  return {
    out: (text) => writeAll(Deno.stdout, text),
    err: (text) => writeAll(Deno.stderr, text),
    isTerminal: Deno.stdout.isTerminal(),
    signal,
  };
}

/** Collects output in memory (for tests). */
export function memoryIo(signal?: AbortSignal): CliIo & { stdout: string; stderr: string } {
  const io = {
    stdout: "",
    stderr: "",
    isTerminal: false,
    signal,
    out(text: string) {
      io.stdout += text;
    },
    err(text: string) {
      io.stderr += text;
    },
  };
  return io;
}
