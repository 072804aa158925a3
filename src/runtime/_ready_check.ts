import type { PluginProcessOptions, ReadyInfo } from "./plugin_process_options.ts";
import { HandshakeError } from "./plugin_errors.ts";
import { clip, QUOTE, quote } from "./record_cap.ts";

/** Method names of `$/ready` kept (each at most `QUOTE` characters). */
const MAX_METHODS = 1024;

/**
 * Checks a plugin's `$/ready` against its manifest and the host: the protocol version, the
 * name it announces (another plugin's code in this folder is refused), its version (a warning
 * when it differs), and its methods (bounded: the names end up in host messages).
 *
 * @throws {HandshakeError} after killing the process (`io.kill`)
 */
export async function checkReady(
  info: unknown,
  options: Pick<PluginProcessOptions, "name" | "protocolVersion" | "version">,
  io: {
    kill(): Promise<unknown>;
    warn(message: string, props: Record<string, unknown>): void;
  },
): Promise<ReadyInfo> {
  const ready = (info ?? {}) as {
    protocol?: unknown;
    methods?: unknown;
    name?: unknown;
    version?: unknown;
  };
  if (ready.protocol !== options.protocolVersion) {
    await io.kill();
    throw new HandshakeError(
      options.name,
      `it speaks protocol ${quote(ready.protocol)}, the manifest and host use ` +
        `protocol ${options.protocolVersion}; update the plugin or its SDK`,
    );
  }
  // Bounded: the names end up in host messages (a call of an unknown method lists them).
  const methods = Array.isArray(ready.methods)
    ? ready.methods.slice(0, MAX_METHODS).filter((m) => typeof m === "string" && m.length <= QUOTE)
    : [];
  const { name, version } = ready;
  if (name !== undefined && name !== null && name !== options.name) {
    // The folder's entrypoint is another plugin's program (a copied main.ts, a bad merge).
    await io.kill();
    throw new HandshakeError(
      options.name,
      `it announced itself as ${quote(name)}, but its manifest names it ` +
        `${JSON.stringify(options.name)}; fix serve({ name }) or plugin.name`,
    );
  }
  if (
    typeof version === "string" && options.version !== undefined &&
    version !== options.version
  ) {
    io.warn(
      "plugin {plugin} announced version {announced}, its manifest says {version}",
      { plugin: options.name, announced: clip(version, QUOTE), version: options.version },
    );
  }
  return {
    protocol: options.protocolVersion,
    methods,
    ...(typeof name === "string" ? { name } : {}),
    ...(typeof version === "string" ? { version } : {}),
  };
}

/** Whether `$/ready`'s `features` lists `name`. */
export function hasFeature(params: unknown, name: string): boolean {
  const features = (params as { features?: unknown } | undefined)?.features;
  return Array.isArray(features) && features.includes(name);
}
