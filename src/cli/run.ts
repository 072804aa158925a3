import type { Command } from "commander";
import { getLogger } from "@logtape/logtape";
import { loadConfig } from "../config/mod.ts";
import { PluginHost } from "../host/mod.ts";
import { setupHostLogging } from "../logs/mod.ts";
import { checkListen, Gateway, readTlsFiles } from "../server/mod.ts";
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
      // Installed before anything starts and removed last, after the log store's final flush:
      // a second Ctrl-C meanwhile must not kill the host with records still queued.
      using stop = listenForStop(ctx.io.signal, (repeats) => {
        if (repeats < 3) {
          getLogger(["plugsconc", "run"]).warning(
            "already stopping; waiting for the plugins to stop (Ctrl-C {left} more times to quit now)",
            { left: 3 - repeats },
          );
          return;
        }
        // The user insists: quit now. Plugins still die with the host (pdeathsig, stdin EOF).
        ctx.io.err("plugsconc: stopping cut short by repeated Ctrl-C\n");
        Deno.exit(130);
      });
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
      // A gateway that may not start as configured is refused before any plugin starts.
      if (c.server.enabled) {
        checkListen(c.server.listen, c.server.token);
        if (c.server.tls !== undefined) readTlsFiles(c.server.tls, c.server.listen);
      }
      await using host = await PluginHost.start({
        config: loaded,
        logStore: logging.store,
        auditActor: "run",
      });
      // Disposed before the host: no request reaches a plugin that is stopping.
      await using gateway = c.server.enabled
        ? await Gateway.start(host, { logSink: logging.sink })
        : undefined;
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
      const http = gateway
        ? `HTTP gateway: ${gateway.url} (${
          c.server.token ? "bearer token required" : "no token: loopback only"
        })`
        : "HTTP gateway: off (server.enabled: false)";
      ctx.io.out(
        `plugsconc ${VERSION}: plugins from ${c.dirs.plugins}; ${watching}\n` +
          `${pool}; ${store}\n${http}\n` +
          formatTable(["NAME", "VERSION", "STATE", "PID", "HEALTH", "GRANTS"], rows) +
          "Ctrl-C stops the host.\n",
      );
      await stop.requested;
      log.info("stopping");
      await gateway?.close();
      await host.stop();
      log.info("plugsconc stopped");
    });
}

/**
 * Listens for SIGINT/SIGTERM (or `signal` aborting) until disposed: `requested` resolves on
 * the first; later ones go to `onRepeat` with their count (1 for the second). Without a
 * listener a second Ctrl-C (a terminal and `deno task` both deliver one) would kill the host
 * in the middle of stopping its plugins.
 */
export function listenForStop(
  signal?: AbortSignal,
  onRepeat: (repeats: number) => void = () => {},
): { readonly requested: Promise<void> } & Disposable {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  let resolve!: () => void;
  const requested = new Promise<void>((r) => (resolve = r));
  let seen = 0;
  const on = () => {
    if (seen++ > 0) return onRepeat(seen - 1);
    resolve();
  };
  for (const s of signals) Deno.addSignalListener(s, on);
  if (signal?.aborted) on();
  else signal?.addEventListener("abort", on, { once: true });
  return {
    requested,
    [Symbol.dispose]() {
      for (const s of signals) Deno.removeSignalListener(s, on);
      signal?.removeEventListener("abort", on);
    },
  };
}
