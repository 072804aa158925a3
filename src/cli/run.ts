import type { Command } from "commander";
import { getLogger } from "@logtape/logtape";
import { loadConfig } from "../config/mod.ts";
import { setupLogging } from "../logs/mod.ts";
import { VERSION } from "../version.ts";
import type { CliContext } from "./context.ts";

/** `run`: loads the config, sets up logging, runs until Ctrl-C (or the io's signal). */
export function registerRun(program: Command, ctx: CliContext): void {
  program
    .command("run")
    .description("run the host with every enabled plugin until Ctrl-C")
    .action(async () => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      await using _logging = await setupLogging(loaded.config.logging);
      const log = getLogger(["plugsconc", "run"]);
      const c = loaded.config;
      log.info("plugsconc {version} starting with {config}", {
        version: VERSION,
        config: loaded.file ?? "defaults",
        pluginsDir: c.dirs.plugins,
        dataDir: c.dirs.data,
        policy: c.security.policy,
        level: c.logging.level,
      });
      await waitForStop(ctx.io.signal);
      log.info("plugsconc stopped");
    });
}

/** Resolves on SIGINT/SIGTERM or when `signal` aborts. */
export function waitForStop(signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    const done = () => {
      for (const s of signals) Deno.removeSignalListener(s, done);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    for (const s of signals) Deno.addSignalListener(s, done);
    if (signal?.aborted) done();
    else signal?.addEventListener("abort", done, { once: true });
  });
}
