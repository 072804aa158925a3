import type { Command } from "commander";
import { appendAuditEvent } from "../audit/mod.ts";
import { loadConfig, type LoadedConfig } from "../config/mod.ts";
import { configProblem } from "../host/mod.ts";
import { errorToJSON } from "../errors/mod.ts";
import { assertVerified, verifyPlugin, type VerifyStatus } from "../integrity/mod.ts";
import { WorkerPool } from "../pool/mod.ts";
import { discoverPlugins, type PluginDescriptor } from "../manifest/mod.ts";
import { effectivePolicy, explainPolicy } from "../pipeline/mod.ts";
import { checkGrantSymlinks, explainSandbox } from "../sandbox/mod.ts";
import { maskConfig } from "../schema/config_secrets.ts";
import { VERSION } from "../version.ts";
import type { CliContext } from "./context.ts";
import { setupCommandLogging } from "./host_logging.ts";
import { compileNow, graphFiles, lookUpPlugin } from "./plugin_lookup.ts";
import { registerChecksumCommands } from "./plugins_checksum.ts";
import { registerLearnCommand } from "./plugins_learn.ts";
import { registerTypesCommand } from "./plugins_types.ts";
import { registerPermissionsCommand } from "./plugins_permissions.ts";
import { runningPlugins } from "./running_host.ts";
import type { PluginView } from "../server/mod.ts";
import { formatTable } from "./table.ts";

/** `plugins list` and `plugins inspect <name>`. */
export function registerPlugins(program: Command, ctx: CliContext): Command {
  const plugins = program.command("plugins").description("inspect plugin folders");

  plugins
    .command("list")
    .description(
      "list discovered plugins: valid ones, and invalid ones with the reason; with the state " +
        "and health of each while `run` serves them (server.enabled)",
    )
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }) => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      await using _logging = await setupCommandLogging(loaded, globals.verbose);
      const { plugins: valid, invalid } = await discoverPlugins(loaded.config.dirs.plugins, {
        hostVersion: VERSION,
      });
      const enabled = (name: string) => loaded.config.plugins[name]?.enabled !== false;
      const live = await runningPlugins(loaded.config);
      const state = (name: string) => withWorkers(live?.get(name)) ?? "-";
      const health = (name: string) => live?.get(name)?.health ?? "-";
      if (opts.json) {
        ctx.io.out(
          JSON.stringify(
            {
              plugins: valid.map((p) => ({
                name: p.name,
                version: p.manifest.plugin.version,
                type: p.manifest.plugin.type,
                dir: p.dir,
                enabled: enabled(p.name),
                methods: Object.keys(p.manifest.methods),
                state: live?.get(p.name)?.state ?? null,
                health: live?.get(p.name)?.health ?? null,
                placement: live?.get(p.name)?.placement ??
                  loaded.config.plugins[p.name]?.placement ?? "local",
                workers: workersOf(live?.get(p.name)),
              })),
              running: live !== undefined,
              invalid: invalid.map((i) => ({ dir: i.dir, error: i.error.toJSON() })),
            },
            null,
            2,
          ) + "\n",
        );
        return;
      }
      const rows = [
        ...valid.map((p) => [
          p.name,
          p.manifest.plugin.version,
          enabled(p.name) ? "valid" : "disabled",
          state(p.name),
          health(p.name),
          p.dir,
          p.manifest.about.description,
        ]),
        ...invalid.map((
          i,
        ) => ["-", "-", "invalid", "-", "-", i.dir, i.error.message.split("\n").join(" ")]),
      ];
      ctx.io.out(
        formatTable(
          ["NAME", "VERSION", "STATUS", "STATE", "HEALTH", "FOLDER", "DESCRIPTION / REASON"],
          rows,
        ) +
          (live === undefined
            ? "(STATE and HEALTH come from a running host's HTTP gateway: none answered)\n"
            : ""),
      );
    });

  plugins
    .command("inspect")
    .description(
      "show a plugin's manifest summary, the exact deno argv, env names, warnings, refusals",
    )
    .argument("<name>", "plugin name")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { json?: boolean }) => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      await using _logging = await setupCommandLogging(loaded, globals.verbose);
      const config = loaded.config;
      const { plugin, runtime } = await lookUpPlugin(loaded, name);
      const { compiled } = compileNow(loaded, { plugin, runtime });
      const symlinkRefusals = await checkGrantSymlinks(compiled);
      const withLinks = { ...compiled, refusals: [...compiled.refusals, ...symlinkRefusals] };
      if (withLinks.refusals.length > 0) {
        appendAuditEvent(config, "plugins inspect", {
          kind: "grant.refused",
          plugin: plugin.name,
          detail: { refusals: withLinks.refusals },
        });
      }
      // The same check as before every spawn: what the plugin's code imports.
      const graph = await graphFiles(config, loaded.file, plugin, runtime).then(
        (all) => ({ ok: true as const, files: all.filter((f) => !runtime.sdkFiles.has(f)) }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      // And the checksum check of the whole folder, as before every spawn (which runs it only
      // once the graph passed).
      let checksum: CheckOutcome<{ status: VerifyStatus; actual: string }> | undefined;
      if (graph.ok) {
        await using pool = new WorkerPool({ maxWorkers: 1 });
        checksum = await verifyPlugin(pool, plugin)
          .then((r) => {
            assertVerified(r, { required: config.security.require_checksums });
            return { ok: true as const, status: r.status, actual: r.actual };
          })
          .catch((error: unknown) => ({ ok: false as const, error }));
      }
      const failed = !graph.ok ? graph.error : checksum?.ok === false ? checksum.error : undefined;
      if (opts.json) {
        ctx.io.out(
          JSON.stringify(
            {
              name: plugin.name,
              manifest: plugin.manifest,
              dir: plugin.dir,
              deno: runtime.denoBin,
              argv: compiled.argv,
              env: Object.keys(compiled.env),
              warnings: compiled.warnings,
              refusals: withLinks.refusals,
              module_graph: graph.ok ? { files: graph.files } : { error: errorToJSON(graph.error) },
              checksum: checksum === undefined
                ? null
                : checksum.ok
                ? { status: checksum.status, actual: checksum.actual }
                : { error: errorToJSON(checksum.error) },
              grants: compiled.grants,
              policy: effectivePolicy(config, plugin),
              // plugins.<name>.config with secrets (${VAR}, writeOnly fields) as ***; every
              // value as *** when it fails its config.schema or there is none.
              config: maskConfig(loaded.config.plugins[plugin.name]?.config, {
                schema: plugin.manifest.config.schema,
                fromEnv: loaded.fromEnv,
                at: ["plugins", plugin.name, "config"],
              }) ?? null,
              config_problem: configProblem(plugin, config) ?? null,
            },
            null,
            2,
          ) + "\n",
        );
        return;
      }
      const m = plugin.manifest;
      ctx.io.out(
        `${m.plugin.name} ${m.plugin.version} (${m.plugin.type}, ${m.plugin.language})\n` +
          `  folder:      ${plugin.dir}\n  entrypoint:  ${plugin.entrypoint}\n` +
          `  description: ${m.about.description || "-"}\n` +
          `  methods:     ${
            Object.entries(m.methods).map(([k, v]) => `${k}${v.idempotent ? " (idempotent)" : ""}`)
              .join(", ") ||
            "(announced at start)"
          }\n` +
          `  depends on:  ${m.depends_on.join(", ") || "-"}\n` +
          `  config:      ${explainConfig(loaded, plugin)}\n` +
          `  deno:        ${runtime.denoBin}\n\n` +
          explainGraph(graph) + "\n" + explainChecksum(checksum) + "\n\n" +
          explainSandbox(withLinks, { code: failed === undefined ? null : codeOf(failed) }) +
          "\n\ncall policy:\n" +
          explainPolicy(effectivePolicy(config, plugin)).trimEnd().replace(/^/gm, "  ") + "\n",
      );
    });
  registerChecksumCommands(plugins, ctx);
  registerPermissionsCommand(plugins, ctx);
  registerLearnCommand(plugins, ctx);
  registerTypesCommand(plugins, ctx);
  return plugins;
}

/** The config line of `plugins inspect`: whether it passes the schema; never a value. */
function explainConfig(loaded: LoadedConfig, plugin: PluginDescriptor): string {
  const problem = configProblem(plugin, loaded.config);
  if (problem !== undefined) return `INVALID: ${problem}`;
  const given = loaded.config.plugins[plugin.name]?.config !== undefined;
  const schema = plugin.manifest.config.schema !== undefined;
  if (!given && !schema) return "-";
  const checked = schema ? "passes config.schema" : "no config.schema (unchecked)";
  return `${given ? "given" : "none given"}, ${checked}`;
}

type CheckOutcome<T> = ({ ok: true } & T) | { ok: false; error: unknown };

function explainChecksum(
  checksum: CheckOutcome<{ status: VerifyStatus; actual: string }> | undefined,
): string {
  if (checksum === undefined) return "checksum:     not checked (no module graph)";
  if (!checksum.ok) {
    const e = checksum.error as { message?: unknown };
    return `checksum:     REFUSED (${codeOf(checksum.error)})\n` +
      String(e.message ?? e).replace(/^/gm, "  ");
  }
  return checksum.status === "ok"
    ? `checksum:     ok, sha256:${checksum.actual}`
    : `checksum:     none (unsigned; the code hashes to sha256:${checksum.actual})`;
}

/** The module-graph part of `plugins inspect`: the plugin's own files, or why it is refused. */
function explainGraph(
  graph: { ok: true; files: readonly string[] } | { ok: false; error: unknown },
): string {
  if (!graph.ok) {
    const e = graph.error as { code?: unknown; message?: unknown };
    return `module graph: REFUSED${typeof e.code === "string" ? ` (${e.code})` : ""}\n` +
      String(e.message ?? e).replace(/^/gm, "  ");
  }
  return `module graph: ${graph.files.length} file(s) of its own, plus the SDK\n` +
    graph.files.map((f) => `  ${f}`).join("\n");
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "INTERNAL";
}

/** A remote plugin's workers (ids), from a running host's view; `null` for a local plugin. */
function workersOf(view: PluginView | undefined): string[] | null {
  if (view?.placement === undefined || view.placement === "local") return null;
  return view.instances.flatMap((i) => (i.workers ?? []).map((w) => w.id));
}

/** The STATE cell: a remote plugin's state names its workers. */
function withWorkers(view: PluginView | undefined): string | undefined {
  const workers = workersOf(view);
  if (view === undefined || workers === null) return view?.state;
  const ids = workers.length === 0 ? "no workers" : workers.join(", ");
  return `${view.state} (${view.placement}: ${ids})`;
}
