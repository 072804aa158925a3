import { schemaProblem } from "./json_schema.ts";

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
  const check = (schema: unknown, at: (string | number)[]) => {
    if (schema === undefined) return;
    const p = schemaProblem(schema);
    if (p !== undefined) problems.push({ at: [...at, ...p.at], message: p.message });
  };
  for (const [name, spec] of Object.entries(manifest.methods)) {
    for (const key of ["params", "result", "chunk"] as const) {
      check(spec[key], ["methods", name, key]);
    }
  }
  check(manifest.config.schema, ["config", "schema"]);
  return problems;
}
