/**
 * JSON Schema for typed methods and plugin config: a validator of a documented subset of draft
 * 2020-12 (`compileSchema`, `checkSchema`), the checks of a manifest's schemas, secret masking
 * by `writeOnly`, and TypeScript types for clients (`generateTypes`). Everything here imports
 * only relative files: the plugin SDK loads the validator inside the sandbox.
 *
 * @module
 */
export {
  checkSchema,
  type CompileOptions,
  compileSchema,
  SCHEMA_LIMITS,
  type SchemaProblem,
  schemaProblem,
  type Validator,
} from "./json_schema.ts";
export { MASK, maskPaths, maskWriteOnly } from "./config_secrets.ts";
export {
  type ManifestSchemaProblem,
  manifestSchemaProblems,
  type SchemaHolder,
} from "./manifest_schemas.ts";
export { clientTypeName, generateTypes, type TypedPlugin } from "./ts_types.ts";
