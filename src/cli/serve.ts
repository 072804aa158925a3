import type { Command } from "commander";
import { dirname } from "node:path";
import { getLogger } from "@logtape/logtape";
import { loadConfig } from "../config/mod.ts";
import { PluginHost } from "../host/mod.ts";
import { setupHostLogging } from "../logs/mod.ts";
import {
  checkWorkerSecurity,
  redactServers,
  RemoteConfigError,
  RemoteWorker,
} from "../remote/mod.ts";
import { VERSION } from "../version.ts";
import type { CliContext } from "./context.ts";
import { registerUsageErrorClass, UsageError } from "./exit_codes.ts";
import { listenForStop } from "./run.ts";
import { formatTable } from "./table.ts";

// An insecure or incomplete remote.nats is the user's input (exit 2), like a bad config.
registerUsageErrorClass(RemoteConfigError);

/**
 * `serve --nats <url>`: runs this config's plugins as `run` does and exposes each ready one
 * as a NATS service, for hosts whose config says `placement: remote`.
 */
export function registerServe(program: Command, ctx: CliContext): void {
  program
    .command("serve")
    .description(
      "run this config's plugins (as `run` does) and serve them to other hosts over NATS " +
        "until Ctrl-C; stopping drains calls in flight",
    )
    .option("--nats <url>", "NATS server(s), comma-separated (default: remote.nats.servers)")
    .option("--worker-id <id>", "id in service discovery (default: remote.worker_id, or host-pid)")
    .action(async (opts: { nats?: string; workerId?: string }) => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      const c = loaded.config;
      const nats = opts.nats === undefined
        ? c.remote.nats
        : { ...c.remote.nats, servers: opts.nats.split(",").map((s) => s.trim()).filter(Boolean) };
      // Refused before any plugin starts: a bad worker id or url, an unauthenticated,
      // non-loopback server.
      const workerId = opts.workerId ?? c.remote.worker_id;
      if (workerId !== undefined && !/^[-\w]+$/.test(workerId)) {
        throw new UsageError(
          `--worker-id ${JSON.stringify(workerId)}: a worker id is letters, digits, '-' and '_'`,
        );
      }
      checkWorkerSecurity(nats);
      // Passwords and tokens in the urls stay out of logs and output.
      const shown = redactServers(nats.servers).join(", ");
      using stop = listenForStop(ctx.io.signal, (repeats) => {
        if (repeats < 3) return;
        ctx.io.err("plugsconc: stopping cut short by repeated Ctrl-C\n");
        Deno.exit(130);
      });
      await using logging = await setupHostLogging(c);
      const log = getLogger(["plugsconc", "serve"]);
      log.info("plugsconc {version} serving {config} on NATS {servers}", {
        version: VERSION,
        config: loaded.file ?? "defaults",
        servers: shown,
      });
      await using host = await PluginHost.start({ config: loaded, logStore: logging.store });
      await using worker = await RemoteWorker.start({
        host,
        nats,
        baseDir: loaded.file ? dirname(loaded.file) : Deno.cwd(),
        workerId,
      });
      const rows = worker.served.map((p) => [p.plugin, p.version, p.methods.join(", ")]);
      ctx.io.out(
        `plugsconc ${VERSION} worker ${worker.id} on NATS ${shown}\n` +
          formatTable(["PLUGIN", "VERSION", "METHODS"], rows) +
          `serving ${rows.length} plugin(s); Ctrl-C drains and stops.\n`,
      );
      await stop.requested;
      log.info("draining");
      await worker.stop();
      await host.stop();
      log.info("worker stopped");
    });
}
