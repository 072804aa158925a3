import { getLogger } from "@logtape/logtape";
import { HandshakeError } from "./plugin_errors.ts";
import type { PluginProcessOptions } from "./plugin_process_options.ts";

/** The `$/ready` feature of an SDK that answers `$/configure`. */
export const FEATURE_CONFIGURE = "configure";

/** What a process offers the configure step. */
interface Configurable {
  request(method: string, params?: unknown, options?: { timeoutMs?: number }): Promise<unknown>;
  kill(): Promise<unknown>;
  readonly exited: Promise<unknown>;
  readonly stderrTail: readonly string[];
}

/**
 * Sends `options.configure` as `$/configure` after `$/ready`, before the process counts as
 * ready, within the start timeout (`deadline`). A plugin whose `$/ready` lacks the
 * `configure` feature (an older SDK) fails to start when there is config for it (it would run
 * without it), and starts when there are only result schemas (the SDK cannot check them; a
 * warning says so).
 *
 * @throws {HandshakeError} when the plugin cannot take its config, or refuses it
 */
export async function configureOnStart(
  proc: Configurable,
  options: Pick<PluginProcessOptions, "name" | "configure">,
  features: unknown,
  deadline: Promise<"timeout">,
): Promise<void> {
  const params = options.configure;
  if (params === undefined) return;
  const supported = Array.isArray(features) && features.includes(FEATURE_CONFIGURE);
  if (!supported) {
    if (params.config !== undefined) {
      await proc.kill();
      throw new HandshakeError(
        options.name,
        `it cannot receive plugins.${options.name}.config: its $/ready does not list the ` +
          `"${FEATURE_CONFIGURE}" feature (an older SDK); update the plugin's SDK, or remove the ` +
          "config",
      );
    }
    getLogger(["plugsconc", "plugin", options.name]).warning(
      "plugin {plugin}: its SDK does not support $/configure, so its results are not checked " +
        "against the manifest's result schemas; update the plugin's SDK",
      { plugin: options.name },
    );
    return;
  }
  const outcome = await Promise.race([
    proc.request("$/configure", params).then(() => "ok" as const, (e: unknown) => e),
    proc.exited.then(() => "exited" as const),
    deadline,
  ]);
  if (outcome === "ok") return;
  await proc.kill();
  const reason = outcome === "timeout"
    ? "no answer to $/configure within start_timeout_ms"
    : outcome === "exited"
    ? "it exited during $/configure"
    : `it refused $/configure: ${String((outcome as { message?: unknown })?.message ?? outcome)}`;
  throw new HandshakeError(options.name, reason, proc.stderrTail);
}
