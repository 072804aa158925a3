import { z } from "zod";

/** Log levels, lowest first (LogTape's names). */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

/** The largest timer delay JavaScript honours (~24.8 days); larger values are refused. */
const MAX_INT = 2_147_483_647;
const positiveInt = z.number().int().positive().max(MAX_INT);
const nonNegativeInt = z.number().int().nonnegative().max(MAX_INT);

/** `host:port` with a port; IPv6 hosts in brackets. */
const listenAddress = z.string().regex(
  /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/,
  "expected host:port, e.g. 127.0.0.1:8787",
);

const AppSchema = z.strictObject({
  /** Shown in logs and `run`. */
  name: z.string().min(1).default("plugsconc"),
  /** Free text, e.g. `production`. */
  environment: z.string().default("development"),
  /** How long `run` waits for plugins to stop on Ctrl-C before killing them. */
  shutdown_timeout_ms: positiveInt.default(10_000),
}).describe("Host identity and shutdown.");

const DirsSchema = z.strictObject({
  /** Folder scanned for plugin folders (each with a manifest.yaml). */
  plugins: z.string().min(1).default("./plugins"),
  /** Host data: per-plugin DATA_DIRs, the log database, caches. */
  data: z.string().min(1).default("./data"),
}).describe("Folders; relative paths resolve against the config file's folder.");

const FileLogSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Log file; relative to the config file's folder. */
  path: z.string().min(1).default("./data/logs/plugsconc.log"),
  /** `size`: rotate at max_size_mb keeping max_backups; `daily`/`hourly`: one file per period. */
  rotate: z.enum(["size", "daily", "hourly"]).default("size"),
  max_size_mb: z.number().positive().max(10_240).default(10),
  max_backups: z.number().int().min(1).max(1000).default(5),
  /** Only for time rotation: delete files older than this (0 = keep all). */
  max_age_days: nonNegativeInt.default(0),
  format: z.enum(["json", "text"]).default("json"),
});

const StoreLogSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** SQLite file; relative to dirs.data. */
  db_file: z.string().min(1).default("logs.db"),
  queue_size: positiveInt.default(10_000),
  batch_size: positiveInt.default(1_000),
  flush_interval_ms: positiveInt.default(200),
  synchronous: z.enum(["OFF", "NORMAL", "FULL"]).default("NORMAL"),
  retention_days: nonNegativeInt.default(14),
  max_rows: nonNegativeInt.default(1_000_000),
  /**
   * Cap of the database's size in bytes (0: no cap): past it the oldest records are deleted
   * (and the deletion logged), so the file stays near this size.
   */
  max_bytes: z.number().int().nonnegative().default(1024 * 1024 * 1024),
  /** How often the writer deletes records beyond retention_days / max_rows (in small batches). */
  retention_interval_ms: z.number().int().min(100).default(60_000),
  /**
   * How long one write attempt waits for a lock another process holds before backing off and
   * retrying (the writer runs in a worker: this never blocks the host).
   */
  busy_timeout_ms: nonNegativeInt.max(60_000).default(200),
});

/** How much a plugin may log (its `$/log` records, stderr lines and protocol warnings). */
const LogBudgetSchema = z.strictObject({
  /** Records per second, averaged; bursts of up to 2 s worth pass. */
  records_per_s: positiveInt.default(500),
  /** Bytes per second (message plus serialised fields), averaged like records_per_s. */
  bytes_per_s: positiveInt.default(512 * 1024),
  /** One record's size cap: a longer message is cut and bigger fields are replaced by a note. */
  max_record_bytes: z.number().int().min(256).max(16 * 1024 * 1024).default(64 * 1024),
  /** While records are over budget, the dropped count is logged at most this often. */
  report_interval_ms: positiveInt.default(10_000),
  /**
   * Bytes per second of the plugin's own requests to host services (their lines on stdout, up
   * to 64 KiB each) the host reads outside the budget above; bursts of 2 s worth pass.
   */
  request_bytes_per_s: positiveInt.default(8 * 1024 * 1024),
});

const LoggingSchema = z.strictObject({
  level: z.enum(LOG_LEVELS).default("info"),
  /** `auto`: colored text on a TTY, JSON lines otherwise. */
  format: z.enum(["auto", "pretty", "json"]).default("auto"),
  include_location: z.boolean().default(false),
  /** Per-category levels, e.g. `{ "plugsconc.rpc": debug }`. */
  categories: z.record(z.string(), z.enum(LOG_LEVELS)).default({}),
  file: FileLogSchema.prefault({}),
  store: StoreLogSchema.prefault({}),
  /** Per-plugin log budget; `plugins.<name>.log_budget` overrides fields of it. */
  plugin_budget: LogBudgetSchema.prefault({}),
});

const WatcherSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** Restart a plugin when its folder changes. */
  reload: z.boolean().default(true),
  debounce_ms: z.number().int().min(10).max(60_000).default(200),
  ignore: z.array(z.string()).default([
    ".git",
    "node_modules",
    "*.swp",
    "*.swx",
    "*~",
    ".#*",
    "4913",
  ]),
});

const WorkerPoolSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** Upper bound; the pool uses min(this, CPU count). */
  max_workers: z.number().int().min(1).max(256).default(4),
  queue_limit: positiveInt.default(1_000),
});

/** A command the host operator vouches for (`security.process.allow`). */
const AllowedCommandSchema = z.strictObject({
  /** Absolute path; matched by the file it resolves to, not by name. */
  command: z.string().regex(/^\//, "an absolute path, e.g. /usr/bin/rsync"),
  /**
   * Literal options (arguments starting with `-`) a grant of this command may write in a
   * pattern that has a wildcard, e.g. `[-a, --delete]`. `--` is always allowed.
   */
  options: z.array(z.string().regex(/^-/, "an option starts with '-'")).default([]),
});

const ProcessPolicySchema = z.strictObject({
  /**
   * Under `strict`, a process grant whose command is a launcher (a shell, an interpreter, a
   * script, a program that runs its arguments) or that has a wildcard argument (`*`,
   * `${DATA_DIR}/*`) is refused unless its command is listed here.
   */
  allow: z.array(AllowedCommandSchema).default([]),
});

const SecuritySchema = z.strictObject({
  /** `strict` refuses grants Deno cannot enforce exactly; `permissive` widens them with a warning. */
  policy: z.enum(["strict", "permissive"]).default("strict"),
  /** Filesystem grants must lie under one of these (default: dirs.plugins and dirs.data). */
  allowed_roots: z.array(z.string().min(1)).default([]),
  /** Let manifests reach loopback addresses (127.0.0.0/8, ::1, localhost). */
  allow_loopback: z.boolean().default(false),
  /** Let manifests reach link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10). */
  allow_link_local: z.boolean().default(false),
  /** Refuse plugins without a checksum (manifest `security.checksum` or `<entrypoint>.sha256`). */
  require_checksums: z.boolean().default(false),
  /** If non-empty, only these plugin names may load. */
  allowed_plugins: z.array(z.string()).default([]),
  /** What process grants may name (see the README's trust model for process grants). */
  process: ProcessPolicySchema.prefault({}),
  /**
   * Run plugins with Deno's permission audit (`DENO_AUDIT_PERMISSIONS`): which grants are used,
   * which checks are denied (`plugins permissions`). `plugins.<name>.permission_audit` overrides.
   */
  permission_audit: z.boolean().default(true),
});

const RestartSchema = z.strictObject({
  max_restarts: nonNegativeInt.default(5),
  window_ms: positiveInt.default(60_000),
  initial_backoff_ms: positiveInt.default(200),
  max_backoff_ms: positiveInt.default(10_000),
});

const RetrySchema = z.strictObject({
  max_attempts: z.number().int().min(1).max(100).default(3),
  initial_delay_ms: nonNegativeInt.default(50),
  max_delay_ms: nonNegativeInt.default(2_000),
  multiplier: z.number().min(1).default(2),
});

const CircuitBreakerSchema = z.strictObject({
  enabled: z.boolean().default(true),
  mode: z.enum(["consecutive", "ratio"]).default("consecutive"),
  failure_threshold: positiveInt.default(5),
  /** Share of failed calls in the window that opens the breaker: above 0, below 1. */
  failure_ratio: z.number().gt(0).lt(1).default(0.5),
  window_ms: positiveInt.default(10_000),
  min_requests: positiveInt.default(10),
  recovery_ms: positiveInt.default(10_000),
  success_threshold: positiveInt.default(1),
});

const RateLimitSchema = z.strictObject({
  /** Calls per second; 0 = unlimited. */
  rps: z.number().nonnegative().default(0),
  burst: positiveInt.default(1),
});

const BulkheadSchema = z.strictObject({
  max_in_flight: positiveInt.default(64),
  queue: nonNegativeInt.default(256),
});

const HealthSchema = z.strictObject({
  interval_ms: positiveInt.default(10_000),
  timeout_ms: positiveInt.default(2_000),
  failure_limit: positiveInt.default(3),
});

/** Settings every plugin gets unless `plugins.<name>` or its manifest overrides them. */
const DefaultsSchema = z.strictObject({
  timeout_ms: positiveInt.default(5_000),
  start_timeout_ms: positiveInt.default(10_000),
  stop_grace_ms: positiveInt.default(3_000),
  memory_mb: z.number().int().min(16).max(65_536).default(256),
  max_line_bytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(16 * 1024 * 1024),
  /**
   * `auto`: each plugin process gets a Unix socket of its own, which the SDK uses for the
   * protocol (faster than the pipes); `stdio`: stdin and stdout only.
   */
  transport: z.enum(["auto", "stdio"]).default("auto"),
  instances: z.number().int().min(1).max(64).default(1),
  balancer: z.enum(["round-robin", "least-in-flight"]).default("round-robin"),
  restart: RestartSchema.prefault({}),
  retry: RetrySchema.prefault({}),
  circuit_breaker: CircuitBreakerSchema.prefault({}),
  rate_limit: RateLimitSchema.prefault({}),
  bulkhead: BulkheadSchema.prefault({}),
  health: HealthSchema.prefault({}),
});

/** Per-plugin overrides; every field optional. */
const PluginOverrideSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /** Values for the env names the manifest declares (`capabilities.env`). */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string()).default({}),
  timeout_ms: positiveInt.optional(),
  start_timeout_ms: positiveInt.optional(),
  memory_mb: z.number().int().min(16).max(65_536).optional(),
  /** Overrides `security.permission_audit` for this plugin. */
  permission_audit: z.boolean().optional(),
  instances: z.number().int().min(1).max(64).optional(),
  balancer: z.enum(["round-robin", "least-in-flight"]).optional(),
  restart: RestartSchema.partial().optional(),
  retry: RetrySchema.partial().optional(),
  circuit_breaker: CircuitBreakerSchema.partial().optional(),
  rate_limit: RateLimitSchema.partial().optional(),
  bulkhead: BulkheadSchema.partial().optional(),
  health: HealthSchema.partial().optional(),
  log_budget: LogBudgetSchema.partial().optional(),
  /**
   * Where it runs: `local` (a process on this machine), `remote` (served by `plugsconc serve`
   * workers over NATS, `remote.nats`; the manifest here still sets its methods and policy), or
   * `overflow` (local processes; a call goes to the NATS workers when its local process has
   * `overflow_after` calls in flight, or is not running).
   */
  placement: z.enum(["local", "remote", "overflow"]).default("local"),
  /** With `placement: overflow`: calls in flight on a local process before the next goes remote (default 4). */
  overflow_after: positiveInt.optional(),
  /**
   * The plugin's configuration, any YAML (`${VAR}` expanded): checked against the manifest's
   * `config.schema`, sent to the plugin at the handshake (`ctx.config`). Values from the
   * environment and fields the schema marks `writeOnly` are secrets: never logged or shown.
   */
  config: z.unknown().optional(),
});

const ServerSchema = z.strictObject({
  enabled: z.boolean().default(false),
  listen: listenAddress.default("127.0.0.1:8787"),
  /** Bearer token; required when listening on a non-loopback address. */
  token: z.string().min(16).optional(),
  max_body_bytes: positiveInt.default(1024 * 1024),
  request_timeout_ms: positiveInt.default(30_000),
  /**
   * Serve HTTPS: PEM files, relative to the config file's folder. Both or neither. `plugins
   * list` trusts `cert` (besides the system roots) when it asks the running gateway.
   */
  tls: z.strictObject({
    /** The certificate chain (PEM), leaf first. */
    cert: z.string().min(1),
    /** Its private key (PEM, unencrypted). */
    key: z.string().min(1),
  }).optional(),
});

/** The NATS connection of remote plugins (host) and of `plugsconc serve` (worker). */
const NatsSchema = z.strictObject({
  /** e.g. `[nats://10.0.0.5:4222]`; `serve --nats <url>` overrides it. */
  servers: z.array(
    z.string().min(1).refine(
      // Without the value in the message: a url may hold a password.
      (s) => URL.canParse(/^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `nats://${s}`),
      "not a NATS url: give nats://host:port, tls://host:port or host:port",
    ),
  ).default([]),
  /** Token auth. */
  token: z.string().min(1).optional(),
  user: z.string().min(1).optional(),
  pass: z.string().min(1).optional(),
  /** A `.creds` file (JWT + nkey seed); relative to the config file's folder. */
  credentials: z.string().min(1).optional(),
  /** TLS files (PEM); any of them turns TLS on. */
  tls: z.strictObject({
    ca_file: z.string().min(1).optional(),
    cert_file: z.string().min(1).optional(),
    key_file: z.string().min(1).optional(),
  }).optional(),
  /**
   * Let a worker expose plugins, and a host send calls, on a non-loopback server without
   * authentication. Anyone who can reach that server could then call them, read the calls'
   * params, or answer as a worker: only on a network you trust entirely.
   */
  allow_unauthenticated: z.boolean().default(false),
});

const RemoteSchema = z.strictObject({
  nats: NatsSchema.prefault({}),
  /** This worker's id in service discovery; default: host name and pid. */
  worker_id: z.string().regex(/^[-\w]+$/, "letters, digits, '-' and '_'").optional(),
  /** How long the host waits for a worker to take a request before it counts it lost. */
  accept_timeout_ms: positiveInt.default(1_000),
  /** How often the host checks that workers holding its calls are still connected. */
  probe_interval_ms: positiveInt.default(250),
});

const RuntimeSchema = z.strictObject({
  /** The deno binary plugins run with; default: this Deno, or DENO_BIN, or `deno` on PATH. */
  deno: z.string().min(1).optional(),
});

/** The whole of `config.yaml`. An empty document is a valid config. */
export const ConfigSchema = z.strictObject({
  app: AppSchema.prefault({}),
  dirs: DirsSchema.prefault({}),
  logging: LoggingSchema.prefault({}),
  watcher: WatcherSchema.prefault({}),
  worker_pool: WorkerPoolSchema.prefault({}),
  security: SecuritySchema.prefault({}),
  defaults: DefaultsSchema.prefault({}),
  plugins: z.record(z.string().regex(/^[a-z][a-z0-9-]{0,62}$/), PluginOverrideSchema).default({}),
  server: ServerSchema.prefault({}),
  runtime: RuntimeSchema.prefault({}),
  /** Remote plugins over NATS (`plugins.<name>.placement: remote`, `plugsconc serve`). */
  remote: RemoteSchema.prefault({}),
});

/** A validated config with every default filled in and paths made absolute. */
export type Config = z.output<typeof ConfigSchema>;
/** What a user may write in `config.yaml`. */
export type ConfigInput = z.input<typeof ConfigSchema>;
/** `defaults` after validation. */
export type PluginDefaults = Config["defaults"];
/** `plugins.<name>` after validation. */
export type PluginOverride = Config["plugins"][string];
/** A log level name. */
export type LogLevelName = (typeof LOG_LEVELS)[number];
