import type { LoadedConfig } from "../config/mod.ts";
import { setupLogging } from "../logs/mod.ts";

/**
 * Sets up logging for a short command (`call`, `plugins ...`): only warnings and worse reach
 * the console unless `--verbose`, so stdout stays the command's result.
 */
export function setupCommandLogging(
  loaded: LoadedConfig,
  verbose: boolean,
): Promise<AsyncDisposable> {
  const logging = loaded.config.logging;
  return setupLogging({ ...logging, level: verbose ? logging.level : "warning" });
}
