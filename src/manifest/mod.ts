/**
 * Plugin manifests: the `manifest.yaml` schema, loading with the config's YAML limits,
 * discovery of plugin folders and dependency order.
 *
 * @module
 */
export {
  discoverPlugins,
  type Discovery,
  type InvalidPlugin,
  orderByDependencies,
  planStartOrder,
  type StartPlan,
} from "./discover_plugins.ts";
export { callTargets, dependencyNames } from "./dependency_names.ts";
export { isInside, loadManifest, MANIFEST_FILE, type PluginDescriptor } from "./load_manifest.ts";
export { asManifestError, ManifestError } from "./manifest_error.ts";
export {
  type EgressRule,
  type FilesystemGrant,
  type IngressRule,
  type Manifest,
  ManifestSchema,
  PLUGIN_NAME,
  type PluginTarget,
  type ProcessCapability,
} from "./schema.ts";
export { isValidRange, satisfies, SEMVER } from "./semver.ts";
