import { PluginError } from "../runtime/mod.ts";

/**
 * A call's params fail the method's `params` schema (`INVALID_PARAMS`); the plugin never saw
 * the call. The gateway answers 400; over JSON-RPC the code is -32602.
 */
export class InvalidParamsError extends PluginError {
  /** JSON-RPC "invalid params". */
  readonly rpcCode = -32602;
  /** What failed, e.g. `params.user.age: expected integer, got "3"`. */
  readonly problem: string;

  /** @param plugin name @param method called @param problem the validator's message */
  constructor(plugin: string, method: string, problem: string) {
    super(
      "INVALID_PARAMS",
      `${plugin}.${method}: invalid params: ${problem} (the manifest's methods.${method}.params ` +
        `schema says what it takes; \`plugsconc plugins types ${plugin}\` prints it as TypeScript)`,
      { plugin, method, problem },
    );
    this.problem = problem;
  }
}

/**
 * A plugin's `plugins.<name>.config` fails its manifest's `config.schema`, or the plugin cannot
 * receive config (`PLUGIN_CONFIG_INVALID`). The message names the field, never its value.
 */
export class PluginConfigError extends PluginError {
  /** @param plugin name @param problem what is wrong, and where */
  constructor(plugin: string, problem: string) {
    super("PLUGIN_CONFIG_INVALID", `plugin ${plugin}: invalid config: ${problem}`, {
      plugin,
      problem,
    });
  }
}
