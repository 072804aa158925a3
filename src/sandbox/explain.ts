import type { CompiledSandbox } from "./types.ts";

function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,\[\]-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

function list(title: string, items: readonly string[], empty = "none"): string[] {
  if (items.length === 0) return [`  ${title}: ${empty}`];
  return [`  ${title}:`, ...items.map((i) => `    ${i}`)];
}

/**
 * Human text for `plugsconc plugins inspect`: the exact `deno run` command (one argument per
 * line, shell-quoted where needed), the env names (never values: they may be secrets), what
 * is granted, the warnings, the refusals and the verdict.
 *
 * @example
 * ```ts
 * console.log(explainSandbox(compileSandbox(plugin, ctx)));
 * ```
 */
export function explainSandbox(
  compiled: CompiledSandbox,
  options: {
    /**
     * The outcome of the code checks (module graph, checksum), when they ran: `null` when they
     * passed, else the error code (`MODULE_OUTSIDE_PLUGIN`, `CHECKSUM_MISMATCH`, ...).
     * Default: not run, and the verdict says so.
     */
    code?: string | null;
  } = {},
): string {
  const { plugin, argv, grants, warnings, refusals } = compiled;
  const lines = [
    `plugin ${plugin.name} ${plugin.manifest.plugin.version} (${plugin.dir})`,
    `  manifest: ${plugin.manifestFile}`,
    "",
    "command (clearEnv: true):",
    `  deno ${argv[0] ?? ""}`,
    ...argv.slice(1).map((a) => `    ${shellWord(a)}`),
    "",
    "environment (names only):",
    ...Object.keys(compiled.env).sort().map((name) => `  ${name}`),
    "",
    "grants:",
    ...list("read", grants.read),
    ...list("write", grants.write),
    ...list("net", grants.net),
    ...list("env", grants.env),
    ...list("process (served by the host, never a Deno flag)", grants.process),
    ...list("plugins it may call (checked by the host)", grants.plugins),
    ...(compiled.commands.length === 0 ? [] : list(
      "commands run as (checked again at every spawn; outside the sandbox, with the host's rights)",
      compiled.commands.map((c) =>
        `${c.command}${c.real === c.command ? "" : ` -> ${c.real}`}${
          c.launcher === undefined ? "" : ` (${c.launcher})`
        }`
      ),
    )),
    "",
    ...(warnings.length === 0 ? ["warnings: none"] : [
      `warnings (${warnings.length}):`,
      ...warnings.map((w) => `  - ${w}`),
    ]),
    ...(refusals.length === 0 ? ["refusals: none"] : [
      `refusals (${refusals.length}):`,
      ...refusals.map((r) => `  - ${r.at}: ${r.grant}: ${r.reason}`),
    ]),
    "",
    refusals.length === 0
      ? options.code === undefined
        ? "verdict: may start (after the module graph, checksum and symlink checks)"
        : options.code === null
        ? "verdict: may start"
        : `verdict: refused (its code: ${options.code})`
      : `verdict: refused (${refusals.length} capabilit${
        refusals.length === 1 ? "y" : "ies"
      } refused; GRANT_REFUSED)`,
  ];
  return lines.join("\n");
}
