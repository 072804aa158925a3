import { compileSchema, schemaProblem } from "./json_schema.ts";

/** The parts of a manifest that hold JSON Schemas. */
export interface SchemaHolder {
  readonly methods: Readonly<
    Record<
      string,
      { readonly params?: unknown; readonly result?: unknown; readonly chunk?: unknown }
    >
  >;
  readonly config: { readonly schema?: unknown };
}

/** A schema of a manifest outside the supported subset: where (YAML path keys) and why. */
export interface ManifestSchemaProblem {
  /** From the manifest's root, e.g. `["methods", "add", "params", "properties", "a", "if"]`. */
  readonly at: readonly (string | number)[];
  readonly message: string;
}

/**
 * Every schema of a manifest (`methods.<m>.params|result|chunk`, `config.schema`) checked
 * against the supported subset; the problems found, one per schema at most.
 */
export function manifestSchemaProblems(manifest: SchemaHolder): ManifestSchemaProblem[] {
  const problems: ManifestSchemaProblem[] = [];
  const check = (schema: unknown, at: (string | number)[], byHost: boolean) => {
    if (schema === undefined) return;
    const p = schemaProblem(schema);
    if (p !== undefined) return void problems.push({ at: [...at, ...p.at], message: p.message });
    if (!byHost) return;
    // What the host checks (params, config) it compiles now: a pattern without the linear-time
    // regexp engine is refused here, not at the first call.
    try {
      compileSchema(schema);
    } catch (e) {
      problems.push({ at, message: (e as Error).message });
    }
  };
  for (const [name, spec] of Object.entries(manifest.methods)) {
    check(spec.params, ["methods", name, "params"], true);
    check(spec.result, ["methods", name, "result"], false);
    check(spec.chunk, ["methods", name, "chunk"], false);
  }
  check(manifest.config.schema, ["config", "schema"], true);
  return problems;
}
