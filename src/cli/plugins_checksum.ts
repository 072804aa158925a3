import { basename } from "node:path";
import type { Command } from "commander";
import { loadConfig } from "../config/mod.ts";
import { prepareRuntime } from "../host/mod.ts";
import {
  assertVerified,
  digestPlugin,
  IntegrityError,
  verifyPlugin,
  type VerifyResult,
  writeChecksumFile,
  ZERO_CHECKSUM,
} from "../integrity/mod.ts";
import { discoverPlugins } from "../manifest/mod.ts";
import { poolOptionsFromConfig, WorkerPool } from "../pool/mod.ts";
import { VERSION } from "../version.ts";
import type { CliContext } from "./context.ts";
import { setupCommandLogging } from "./host_logging.ts";
import { findPlugin, graphFiles, lookUpPlugin } from "./plugin_lookup.ts";
import { formatTable } from "./table.ts";

/** A verify table row: a result, or why there is none. */
interface Row {
  readonly name: string;
  readonly status: "ok" | "mismatch" | "unsigned" | "error";
  readonly result?: VerifyResult;
  readonly error?: { code?: string; message: string };
}

function short(hex: string | undefined): string {
  return hex === undefined ? "-" : `${hex.slice(0, 16)}…`;
}

function errorInfo(e: unknown): { code?: string; message: string } {
  const code = (e as { code?: unknown })?.code;
  return {
    ...(typeof code === "string" ? { code } : {}),
    message: e instanceof Error ? e.message : String(e),
  };
}

/**
 * Adds `plugins checksum <name>` (hashes the plugin folder in the worker pool: every file and
 * symlink but the checksum file, the manifest with its `security.checksum` value zeroed; writes
 * `<entrypoint>.sha256`, prints it) and
 * `plugins verify [names...]` (checks every plugin against its `.sha256` file and manifest
 * `security.checksum` with the same function the host runs before every spawn, prints a table;
 * exit code 1 on a mismatch or an error, and on an unsigned plugin when
 * `security.require_checksums` is on). Both first run the module-graph check a spawn runs, so
 * a plugin that could not start is neither signed nor reported as ok.
 */
export function registerChecksumCommands(pluginsCommand: Command, ctx: CliContext): void {
  pluginsCommand
    .command("checksum")
    .description(
      "hash a plugin folder (SHA-256 of every file and symlink in it but the checksum file; " +
        "manifest.yaml counts with its security.checksum value zeroed) and write it to " +
        "<entrypoint>.sha256",
    )
    .argument("<name>", "plugin name")
    .option("--dry-run", "print the checksum without writing the file")
    .option("--json", "print JSON")
    .action(async (name: string, opts: { dryRun?: boolean; json?: boolean }) => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      await using _logging = await setupCommandLogging(loaded, globals.verbose);
      const config = loaded.config;
      const { plugin, runtime } = await lookUpPlugin(loaded, name);
      // A plugin that imports from outside its folder would be refused at spawn: not signed.
      await graphFiles(config, loaded.file, plugin, runtime);
      await using pool = new WorkerPool(poolOptionsFromConfig(config.worker_pool));
      const digest = await digestPlugin(pool, plugin, { signal: ctx.io.signal });
      const hex = digest.hex;
      const written = opts.dryRun
        ? { path: undefined, text: `${hex}  ${basename(plugin.entrypoint)}\n` }
        : await writeChecksumFile(plugin, hex);
      if (opts.json) {
        ctx.io.out(
          JSON.stringify(
            {
              name: plugin.name,
              sha256: hex,
              file: written.path ?? null,
              files: digest.files.map((f) => ({ path: f.path, kind: f.kind, sha256: f.sha256 })),
            },
            null,
            2,
          ) + "\n",
        );
        return;
      }
      ctx.io.out(written.text);
      ctx.io.err(
        (written.path === undefined ? "not written (--dry-run)" : `wrote ${written.path}`) +
          (plugin.manifest.security.checksum !== undefined
            ? `; set security.checksum: "sha256:${hex}" in ${plugin.manifestFile}\n`
            // The manifest is hashed too: adding the key changes the checksum, its value does not.
            : `; to sign in ${plugin.manifestFile} instead, add security.checksum: ` +
              `"${ZERO_CHECKSUM}" there, run this again and set the value it prints\n`),
      );
    });

  pluginsCommand
    .command("verify")
    .description(
      "check every plugin folder against its <entrypoint>.sha256 file and manifest " +
        "security.checksum, as the host does before every spawn",
    )
    .argument("[names...]", "only these plugins (default: all)")
    .option("--json", "print JSON")
    .action(async (names: string[], opts: { json?: boolean }) => {
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      await using _logging = await setupCommandLogging(loaded, globals.verbose);
      const config = loaded.config;
      const discovery = await discoverPlugins(config.dirs.plugins, { hostVersion: VERSION });
      const { plugins, invalid } = discovery;
      for (const name of names) findPlugin(discovery, name);
      const chosen = names.length === 0 ? plugins : plugins.filter((p) => names.includes(p.name));
      const rows: Row[] = names.length === 0
        ? invalid.map((i) => ({
          name: basename(i.dir),
          status: "error",
          error: errorInfo(i.error),
        }))
        : [];
      if (chosen.length > 0) {
        const runtime = await prepareRuntime(config);
        await using pool = new WorkerPool(poolOptionsFromConfig(config.worker_pool));
        // All plugins at once: their hashing jobs share the pool's workers.
        rows.push(
          ...await Promise.all(chosen.map(async (plugin): Promise<Row> => {
            try {
              // As before a spawn: the module-graph check, then the folder's checksum.
              await graphFiles(config, loaded.file, plugin, runtime);
              const result = await verifyPlugin(pool, plugin, { signal: ctx.io.signal });
              return { name: plugin.name, status: result.status, result };
            } catch (e) {
              return { name: plugin.name, status: "error", error: errorInfo(e) };
            }
          })),
        );
      }
      rows.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
      const required = config.security.require_checksums;
      if (opts.json) {
        ctx.io.out(
          JSON.stringify(
            {
              plugins: rows.map((r) => ({
                name: r.name,
                status: r.status,
                actual: r.result?.actual ?? null,
                expected: r.result?.expected ?? [],
                ...(r.error ? { error: r.error } : {}),
              })),
            },
            null,
            2,
          ) + "\n",
        );
      } else {
        ctx.io.out(formatTable(
          ["NAME", "STATUS", "EXPECTED", "ACTUAL"],
          rows.map((r) => {
            const bad = r.result?.expected.find((e) => !e.matches) ?? r.result?.expected[0];
            return [r.name, r.status, short(bad?.hex), short(r.result?.actual)];
          }),
        ));
        for (const r of rows) {
          if (r.error) {
            const message = r.error.message.startsWith(`plugin ${r.name}`)
              ? r.error.message
              : `${r.name}: ${r.error.message}`;
            ctx.io.err(`${message}\n`);
          }
          if (r.status === "mismatch") {
            for (const e of r.result!.expected.filter((e) => !e.matches)) {
              ctx.io.err(
                `${r.name}: ${e.source === "file" ? e.where : `security.checksum in ${e.where}`}` +
                  ` expects ${e.hex}, the plugin folder hashes to ${r.result!.actual}\n`,
              );
            }
          }
          if (r.status === "unsigned" && required) {
            ctx.io.err(
              `${r.name}: no checksum, and security.require_checksums is on; run ` +
                `\`plugsconc plugins checksum ${r.name}\`\n`,
            );
          }
        }
      }
      const failing = rows.filter((r) =>
        r.status === "mismatch" || r.status === "error" || (r.status === "unsigned" && required)
      );
      if (failing.length > 0) {
        const mismatch = failing.find((r) => r.status === "mismatch");
        if (failing.length === 1 && mismatch?.result) assertVerified(mismatch.result);
        throw new IntegrityError(
          mismatch
            ? "CHECKSUM_MISMATCH"
            : failing.every((r) => r.status === "unsigned")
            ? "CHECKSUM_MISSING"
            : "CHECKSUM_UNVERIFIED",
          `${failing.length} plugin(s) failed verification: ` +
            failing.map((r) => `${r.name} (${r.status})`).join(", ") +
            "; if a change is intended, run `plugsconc plugins checksum <name>`",
          { details: { plugins: failing.map((r) => ({ name: r.name, status: r.status })) } },
        );
      }
    });
}
