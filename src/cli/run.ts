import type { Command } from "commander";
import { getLogger } from "@logtape/logtape";
import { loadConfig } from "../config/mod.ts";
import { PluginHost } from "../host/mod.ts";
import { setupHostLogging } from "../logs/mod.ts";
import { VERSION } from "../version.ts";
import type { CliContext } from "./context.ts";
import { formatTable } from "./table.ts";

/** `run`: starts the host with every enabled plugin and runs until Ctrl-C. */
export function registerRun(program: Command, ctx: CliContext): void {
  program
    .command("run")
    .description("run the host with every enabled plugin until Ctrl-C")
    .action(async () => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      await using logging = await setupHostLogging(loaded.config);
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
      await using host = await PluginHost.start({ config: loaded, logStore: logging.store });
      const rows = host.plugins().map((p) => [
        p.name,
        p.version,
        p.state,
        p.pid === undefined ? "-" : String(p.pid),
        p.instances.length > 1 ? `${p.health} (${p.instances.length} instances)` : p.health,
        p.state === "failed" ? `error: ${p.error ?? "?"}` : p.grants,
      ]);
      for (const bad of host.discovery.invalid) {
        rows.push([
          bad.dir.split("/").at(-1) ?? bad.dir,
          "-",
          "invalid",
          "-",
          "-",
          bad.error.message.split("\n").join(" "),
        ]);
      }
      const watching = host.watchedFolder
        ? `watching ${host.watchedFolder} (reload ${c.watcher.reload ? "on" : "off"})`
        : "not watching for changes";
      const pool = c.worker_pool.enabled
        ? `job pool: ${host.pool.maxWorkers} workers, queue limit ${c.worker_pool.queue_limit}`
        : "job pool: off";
      const store = logging.store ? `log store: ${logging.store.path}` : "log store: off";
      ctx.io.out(
        `plugsconc ${VERSION}: plugins from ${c.dirs.plugins}; ${watching}\n` +
          `${pool}; ${store}\n` +
          formatTable(["NAME", "VERSION", "STATE", "PID", "HEALTH", "GRANTS"], rows) +
          "Ctrl-C stops the host.\n",
      );
      await waitForStop(ctx.io.signal);
      log.info("stopping");
      await host.stop();
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
