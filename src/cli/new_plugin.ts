import type { Command } from "commander";
import { join } from "node:path";
import { loadConfig } from "../config/mod.ts";
import { discoverPlugins, loadManifest, MANIFEST_FILE, PLUGIN_NAME } from "../manifest/mod.ts";
import { VERSION } from "../version.ts";
import type { CliContext } from "./context.ts";
import { UsageError } from "./exit_codes.ts";
import { setupCommandLogging } from "./host_logging.ts";

function manifestText(name: string): string {
  return `# A plugsconc plugin: every capability it needs must be listed here (deny by default).
plugin:
  name: ${name}
  version: 0.1.0
  entrypoint: ./main.ts
about:
  description: "${name}: describe what it does"
methods:
  greet: { idempotent: true }
# capabilities:
#   filesystem:
#     - { path: \${DATA_DIR}, permissions: [read, list, write, create] }
#   network:
#     egress: [{ hosts: [api.example.com], ports: [443] }]
#   env: [TZ]
resources: { memory_mb: 64, timeout_ms: 5000 }
`;
}

function mainText(): string {
  return `import { serve } from "plugsconc/sdk";

serve({
  methods: {
    greet({ name }: { name?: string } = {}, ctx) {
      ctx.log.info("greeting", { name }); // a structured record in the host's logs
      return { greeting: \`hello, \${name ?? "world"}\` };
    },
  },
});
`;
}

/** `new plugin <name>`: writes a minimal plugin folder into `dirs.plugins`. */
export function registerNew(program: Command, ctx: CliContext): Command {
  const create = program.command("new").description("create things from templates");
  create
    .command("plugin")
    .description("create a minimal plugin (manifest.yaml + main.ts) in the plugins folder")
    .argument(
      "<name>",
      "plugin name: lower case letters, digits and dashes, starting with a letter",
    )
    .action(async (name: string) => {
      if (!PLUGIN_NAME.test(name)) {
        throw new UsageError(
          `${JSON.stringify(name)} is not a plugin name: use lower case letters, digits and ` +
            "dashes, starting with a letter (at most 63 characters)",
        );
      }
      const globals = ctx.globals();
      const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
      await using _logging = await setupCommandLogging(loaded, globals.verbose);
      const dir = join(loaded.config.dirs.plugins, name);
      await Deno.mkdir(loaded.config.dirs.plugins, { recursive: true });
      // Another folder may already hold a plugin of that name (folder names are free).
      const { plugins } = await discoverPlugins(loaded.config.dirs.plugins, {
        hostVersion: VERSION,
      });
      const taken = plugins.find((p) => p.name === name);
      if (taken !== undefined) {
        throw new UsageError(`plugin ${name} already exists in ${taken.dir}; choose another name`);
      }
      try {
        // Never over an existing folder: it may hold someone's plugin.
        await Deno.mkdir(dir);
      } catch (e) {
        if (e instanceof Deno.errors.AlreadyExists) {
          throw new UsageError(`${dir} already exists; choose another name or remove it`);
        }
        throw e;
      }
      await Deno.writeTextFile(join(dir, MANIFEST_FILE), manifestText(name), { createNew: true });
      await Deno.writeTextFile(join(dir, "main.ts"), mainText(), { createNew: true });
      // What we wrote must be a valid plugin; a failure here is a bug in the templates.
      await loadManifest(dir);
      const config = globals.configExplicit ? ` --config ${JSON.stringify(globals.config)}` : "";
      ctx.io.out(
        `created ${dir}\n  ${MANIFEST_FILE}\n  main.ts\n` +
          `try it: plugsconc${config} call ${name} greet '{"name":"ada"}'` +
          " (from the repository: deno task cli ...)\n",
      );
    });
  return create;
}
