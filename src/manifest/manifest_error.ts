import { ConfigError, type YamlIssue } from "../config/mod.ts";

/**
 * A plugin manifest could not be read or is invalid, or discovery refused a plugin.
 *
 * Codes: `MANIFEST_INVALID` (schema), `MANIFEST_YAML`, `MANIFEST_TOO_LARGE`,
 * `MANIFEST_NOT_FOUND`, `ENTRYPOINT_INVALID`, `PLUGIN_DUPLICATE`, `PLUGIN_NOT_FOUND`,
 * `DEPENDENCY_CYCLE`, `DEPENDENCY_MISSING`, `HOST_VERSION`.
 */
export class ManifestError extends ConfigError {
  /**
   * @param code stable code
   * @param summary first line of the message
   * @param issues located problems
   * @param options cause and the plugin folder
   */
  constructor(
    code: string,
    summary: string,
    issues: readonly YamlIssue[] = [],
    options: { cause?: unknown } = {},
  ) {
    super(code, summary, issues, options);
  }
}

/** Re-labels a `ConfigError` from the shared YAML loader as a `ManifestError`. */
export function asManifestError(e: unknown): unknown {
  if (e instanceof ConfigError && !(e instanceof ManifestError)) {
    const code = e.code.replace(/^CONFIG_/, "MANIFEST_").replace(
      "MANIFEST_ENV",
      "MANIFEST_INVALID",
    );
    return new ManifestError(
      code,
      e.message.split("\n")[0]!.replace("config file", "manifest"),
      e.issues,
      {
        cause: e.cause,
      },
    );
  }
  return e;
}
