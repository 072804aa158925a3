/**
 * The error base class and helpers. Domain subclasses live beside their domain
 * (`ConfigError` in `src/config/`, `ManifestError` in `src/manifest/`, ...).
 *
 * @module
 */
export { causeChain, errorToJSON, PlugsconcError } from "./plugsconc_error.ts";
