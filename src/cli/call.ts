import type { Command } from "commander";
import { loadConfig } from "../config/mod.ts";
import { PluginHost } from "../host/mod.ts";
import { setupHostLogging } from "../logs/mod.ts";
import type { CliContext } from "./context.ts";
import { UsageError } from "./exit_codes.ts";

/** `call <plugin> <method> [json]`: starts that plugin (and its dependencies), calls, prints. */
export function registerCall(program: Command, ctx: CliContext): void {
  program
    .command("call")
    .description("start one plugin, call a method with JSON params, print the JSON result")
    .argument("<plugin>", "plugin name")
    .argument("<method>", "method name")
    .argument("[json]", "params as JSON (object or array)")
    .option("--timeout <ms>", "call timeout in milliseconds (default: from config/manifest)")
    .option(
      "--stream",
      "stream the method: each chunk as one JSON line, then the result (automatic for a " +
        "method declared stream: true)",
    )
    .action(
      async (
        plugin: string,
        method: string,
        json: string | undefined,
        opts: { timeout?: string; stream?: boolean },
      ) => {
        let params: unknown = undefined;
        if (json !== undefined) {
          try {
            params = JSON.parse(json);
          } catch (cause) {
            throw new UsageError(
              `params must be JSON, e.g. '{"loud":true}': ${(cause as Error).message}`,
            );
          }
          if (params === null || typeof params !== "object") {
            throw new UsageError(`params must be a JSON object or array, got ${json}`);
          }
        }
        let timeoutMs: number | undefined;
        if (opts.timeout !== undefined) {
          timeoutMs = Number(opts.timeout);
          if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2_147_483_647) {
            throw new UsageError(
              `--timeout must be a whole number of milliseconds from 1 to 2147483647, got ${opts.timeout}`,
            );
          }
        }
        const globals = ctx.globals();
        const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
        // The store keeps the plugin's records (as under `run`); the console shows warnings only.
        await using logging = await setupHostLogging(loaded.config, {
          consoleLevel: globals.verbose ? undefined : "warning",
        });
        await using host = await PluginHost.start({
          config: loaded,
          only: [plugin],
          logStore: logging.store,
          auditActor: "call",
        });
        const options = { timeoutMs, signal: ctx.io.signal };
        const declared = host.discovery.plugins.find((p) => p.name === plugin);
        if (opts.stream || declared?.manifest.methods[method]?.stream) {
          const stream = host.stream(plugin, method, params, options);
          for await (const chunk of stream) ctx.io.out(JSON.stringify(chunk ?? null) + "\n");
          ctx.io.out(JSON.stringify((await stream.result) ?? null) + "\n");
          return;
        }
        const result = await host.call(plugin, method, params, options);
        ctx.io.out(JSON.stringify(result ?? null, null, 2) + "\n");
      },
    );
}
