/**
 * The cost of params validation (issue 16, part 1): `rpc.ts --schema compare` runs sequential
 * 100-byte echo calls through `host.call` to two copies of the bench plugin in one host, one
 * whose `echo` declares a params schema and one without, in interleaved blocks, and reports
 * each p50 and the difference, beside a third copy without a schema (the noise of the
 * comparison: two plugins without a schema differ by that much). `--schema on` runs the whole
 * benchmark with the schema.
 *
 * @module
 */
import type { PluginHost } from "../../src/host/mod.ts";
import { compileSchema } from "../../src/schema/json_schema.ts";
import type { TestHome } from "../../tests/_helpers.ts";
import { BENCH_PLUGIN, BENCH_PLUGIN_SOURCE, latencyUs, paramsOf, round } from "./_common.ts";

/** The params schema `echo` gets: what a typical typed method declares for `{text}`. */
export const ECHO_PARAMS_SCHEMA = {
  type: "object",
  required: ["text"],
  additionalProperties: false,
  properties: { text: { type: "string", maxLength: 1_048_576 } },
};

/** The bench manifest with `echo` declaring {@linkcode ECHO_PARAMS_SCHEMA}. */
export function withEchoSchema(manifest: string): string {
  const out = manifest.replace(
    "echo: { idempotent: true }",
    `echo: { idempotent: true, params: ${JSON.stringify(ECHO_PARAMS_SCHEMA)} }`,
  );
  if (out === manifest) throw new Error("the bench manifest has no `echo: { idempotent: true }`");
  return out;
}

const TYPED = `${BENCH_PLUGIN}-typed`;
/** A second plugin without a schema: the off/off difference is the noise of the comparison. */
const CONTROL = `${BENCH_PLUGIN}-control`;
const WARMUP = 2_000;
const CALLS = 10_000;
/** Small blocks, rotating which path goes first: a change of machine load hits both alike. */
const BLOCKS = 50;

/** Adds the typed copy of the bench plugin to `home` (before the host starts). */
export async function addTypedBench(home: TestHome): Promise<void> {
  await home.addPlugin(BENCH_PLUGIN_SOURCE, { as: TYPED, manifest: withEchoSchema });
  await home.addPlugin(BENCH_PLUGIN_SOURCE, { as: CONTROL });
}

/** Sequential p50 with and without a params schema, interleaved; and the validator alone. */
export async function schemaCost(host: PluginHost) {
  const params = paramsOf(100);
  const paths = [
    { name: "schema_off", plugin: BENCH_PLUGIN, samples: new Float64Array(CALLS) },
    { name: "schema_on", plugin: TYPED, samples: new Float64Array(CALLS) },
    { name: "control", plugin: CONTROL, samples: new Float64Array(CALLS) },
  ];
  for (const p of paths) for (let i = 0; i < WARMUP; i++) await host.call(p.plugin, "echo", params);
  const block = CALLS / BLOCKS;
  for (let b = 0; b < BLOCKS; b++) {
    for (const p of paths.map((_, i) => paths[(i + b) % paths.length]!)) {
      for (let i = b * block; i < (b + 1) * block; i++) {
        const t0 = performance.now();
        await host.call(p.plugin, "echo", params);
        p.samples[i] = performance.now() - t0;
      }
    }
  }
  // The validator by itself, on the same params.
  const check = compileSchema(ECHO_PARAMS_SCHEMA, { root: "params" });
  const n = 1_000_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) if (check(params) !== undefined) throw new Error("invalid");
  const validateNs = (performance.now() - t0) * 1e6 / n;
  const [off, on, control] = paths.map((p) => ({ calls: CALLS, ...latencyUs(p.samples) }));
  return {
    benchmark: "plugsconc params validation",
    param_bytes: 100,
    interleaved_blocks: BLOCKS,
    schema: ECHO_PARAMS_SCHEMA,
    schema_off: off!,
    schema_on: on!,
    control_off: control!,
    p50_cost_us: round(on!.p50_us - off!.p50_us),
    /** The same difference between the two plugins without a schema. */
    p50_noise_us: round(control!.p50_us - off!.p50_us),
    validator_alone_ns_per_call: round(validateNs),
  };
}
