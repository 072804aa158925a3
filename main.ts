/**
 * The plugsconc command-line entry: `deno task cli <args>` or the compiled binary.
 *
 * The Deno version check runs before anything else is imported, so an old Deno gets one
 * clear line instead of a syntax or API error from deeper modules.
 *
 * @module
 */
import { denoVersionProblem } from "./src/version.ts";

if (import.meta.main) {
  const problem = denoVersionProblem(Deno.version.deno);
  if (problem !== undefined) {
    console.error(problem);
    Deno.exit(1);
  }
  const { runCli, processIo } = await import("./src/cli/mod.ts");
  const stop = new AbortController();
  const code = await runCli(Deno.args, processIo(stop.signal));
  Deno.exit(code);
}
