import { z } from "zod";
import { DEFAULT_HANDSHAKE } from "../sdk/handshake.ts";
import { isValidRange, SEMVER } from "./semver.ts";

/** Plugin names: lower case, digits and dashes, starting with a letter. */
export const PLUGIN_NAME = /^[a-z][a-z0-9-]{0,62}$/;

const FS_PERMISSIONS = ["read", "list", "write", "create", "delete"] as const;

const FilesystemGrantSchema = z.strictObject({
  /** Relative to the plugin folder, or `${DATA_DIR}/...`, or absolute inside allowed roots. */
  path: z.string().min(1),
  permissions: z.array(z.enum(FS_PERMISSIONS)).min(1),
  recursive: z.boolean().default(true),
});

const port = z.number().int().min(1).max(65_535);

const EgressSchema = z.strictObject({
  protocol: z.enum(["tcp", "udp"]).default("tcp"),
  hosts: z.array(z.string().min(1)).min(1),
  ports: z.array(port).min(1, "a port is required: Deno grants host:port pairs"),
});

const IngressSchema = z.strictObject({
  protocol: z.enum(["tcp", "udp"]).default("tcp"),
  ports: z.array(port).min(1),
  allowed_origins: z.array(z.string()).default([]),
});

const ProcessCapabilitySchema = z.union([
  z.strictObject({
    exec: z.strictObject({
      /** Absolute path of the program. */
      command: z.string().regex(/^\//, "an absolute path"),
      /** Allowed arguments, position by position; `*` matches any one argument. */
      args: z.array(z.string()).default([]),
    }),
  }),
  z.strictObject({ kill: z.array(z.enum(["children"])).min(1) }),
]);

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A JSON Schema (a boolean or an object). Which keywords the host supports, and the check that
 * a schema uses only those, live with the validator (`src/schema/`).
 */
export const JsonSchemaValue = z.union([z.boolean(), z.record(z.string(), z.unknown())]);

/** A method name, declared or granted: what every caller can type and every log can show. */
const MethodName = z.string()
  .regex(/^[\x21-\x7e]{1,256}$/, "a method name: 1 to 256 printable ASCII characters, no spaces")
  .refine(
    (m) => !m.startsWith("$/") && !m.startsWith("host/"),
    "the protocol's methods ($/..., host/...) are the host's",
  );

/** A plugin this plugin may call (`ctx.host.plugins.call`), and which of its methods. */
const PluginTargetSchema = z.strictObject({
  name: z.string().regex(PLUGIN_NAME, "a plugin name"),
  methods: z.array(MethodName).min(1, "name the methods it may call").refine(
    (ms) => new Set(ms).size === ms.length,
    "a method is listed twice",
  ),
});

/** The schema of `manifest.yaml`. Unknown keys are errors everywhere. */
export const ManifestSchema = z.strictObject({
  plugin: z.strictObject({
    name: z.string().regex(
      PLUGIN_NAME,
      "lower case letters, digits and dashes, starting with a letter",
    ),
    type: z.string().min(1).default("generic"),
    version: z.string().regex(SEMVER, "a semantic version like 1.2.0"),
    entrypoint: z.string().min(1),
    language: z.enum(["typescript", "javascript"]).default("typescript"),
    requires_host: z.string().refine(isValidRange, "a version range like >=0.1.0 <1").optional(),
  }),
  about: z.strictObject({
    description: z.string().default(""),
    maintainer: z.string().default(""),
    url: z.string().default(""),
  }).prefault({}),
  handshake: z.strictObject({
    protocol_version: z.number().int().positive().default(1),
    magic_cookie_key: z.string().regex(ENV_NAME).default(DEFAULT_HANDSHAKE.magic_cookie_key),
    magic_cookie_value: z.string().min(1).default(DEFAULT_HANDSHAKE.magic_cookie_value),
  }).prefault({}),
  security: z.strictObject({
    checksum: z.string().regex(/^sha256:[0-9a-f]{64}$/, "sha256:<64 hex digits>").optional(),
  }).prefault({}),
  capabilities: z.strictObject({
    filesystem: z.array(FilesystemGrantSchema).default([]),
    network: z.strictObject({
      egress: z.array(EgressSchema).default([]),
      ingress: z.array(IngressSchema).default([]),
    }).prefault({}),
    process: z.array(ProcessCapabilitySchema).default([]),
    env: z.array(z.string().regex(ENV_NAME, "an environment variable name")).default([]),
    /** Other plugins' methods it may call through the host (checked by the host). */
    plugins: z.array(PluginTargetSchema).default([]).refine(
      (ts) => new Set(ts.map((t) => t.name)).size === ts.length,
      "a plugin is listed twice: list all its methods in one entry",
    ),
  }).prefault({}),
  resources: z.strictObject({
    memory_mb: z.number().int().min(16).max(65_536).optional(),
    timeout_ms: z.number().int().positive().max(2_147_483_647).optional(),
  }).prefault({}),
  methods: z.record(
    z.string().min(1), // named by MethodName: checked below, where its message survives
    z.strictObject({
      idempotent: z.boolean().default(false),
      timeout_ms: z.number().int().positive().max(2_147_483_647).optional(),
      /** JSON Schema of the params: the host refuses a call whose params fail it. */
      params: JsonSchemaValue.optional(),
      /** JSON Schema of the result: the SDK refuses to send a result that fails it. */
      result: JsonSchemaValue.optional(),
      /** The method streams chunks (`host.stream`); its result ends the stream. */
      stream: z.boolean().default(false),
      /** JSON Schema of each chunk of a streaming method. */
      chunk: JsonSchemaValue.optional(),
    }),
  ).default({}),
  /** The plugin's configuration (`plugins.<name>.config` in the host config, `ctx.config`). */
  config: z.strictObject({
    /** JSON Schema the host checks `plugins.<name>.config` against before the plugin starts. */
    schema: JsonSchemaValue.optional(),
  }).prefault({}),
  depends_on: z.array(z.string().regex(PLUGIN_NAME)).default([]),
}).superRefine((m, ctx) => {
  for (const name of Object.keys(m.methods)) {
    const checked = MethodName.safeParse(name);
    if (checked.success) continue;
    ctx.addIssue({
      code: "custom",
      path: ["methods", name],
      message: `method name ${JSON.stringify(name)}: ${checked.error.issues[0]!.message}`,
    });
  }
  m.capabilities.plugins.forEach((t, i) => {
    if (t.name !== m.plugin.name) return;
    ctx.addIssue({
      code: "custom",
      path: ["capabilities", "plugins", i, "name"],
      message: "a plugin cannot be granted calls to itself (such a call is always a cycle)",
    });
  });
});

/** A validated manifest. */
export type Manifest = z.output<typeof ManifestSchema>;
/** A filesystem grant. */
export type FilesystemGrant = Manifest["capabilities"]["filesystem"][number];
/** An egress rule. */
export type EgressRule = Manifest["capabilities"]["network"]["egress"][number];
/** An ingress rule. */
export type IngressRule = Manifest["capabilities"]["network"]["ingress"][number];
/** A process capability. */
export type ProcessCapability = Manifest["capabilities"]["process"][number];
/** A plugin-to-plugin call grant. */
export type PluginTarget = Manifest["capabilities"]["plugins"][number];
/** One method's declaration. */
export type MethodSpec = Manifest["methods"][string];
