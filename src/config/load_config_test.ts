import assert from "node:assert/strict";
import { join, resolve } from "node:path";
import {
  ConfigError,
  ConfigSchema,
  loadConfig,
  type LoadedConfig,
  maskSecrets,
  parseConfig,
} from "./mod.ts";

const fixtures = resolve(import.meta.dirname!, "../../tests/fixtures/config");
const fixture = (name: string) => join(fixtures, name);
const env = (vars: Record<string, string>) => (name: string) => vars[name];

async function configError(p: Promise<unknown>): Promise<ConfigError> {
  const e = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
  return e;
}

Deno.test("loadConfig() reads a full config with every section", async () => {
  const { config, fromEnv } = await loadConfig(fixture("full.yaml"), {
    env: env({ PLUGSCONC_TEST_SECRET: "s3cret", PLUGSCONC_TEST_TZ: "Europe/Paris" }),
  });
  assert.equal(config.app.name, "test-host");
  assert.equal(config.app.environment, "ci"); // default of ${VAR:-ci}
  assert.equal(config.dirs.plugins, join(fixtures, "plugins"));
  assert.equal(config.dirs.data, join(fixtures, "var/data"));
  assert.equal(config.logging.file.path, join(fixtures, "var/log/host.log"));
  assert.equal(config.logging.store.db_file, join(fixtures, "var/data/logs.sqlite"));
  assert.equal(config.logging.categories["plugsconc.rpc"], "warning");
  assert.deepEqual(config.security.allowed_roots, [
    join(fixtures, "plugins"),
    join(fixtures, "var"),
  ]);
  assert.equal(config.defaults.circuit_breaker.mode, "ratio");
  assert.equal(config.defaults.bulkhead.queue, 16);
  assert.equal(config.plugins.cat?.env.TZ, "Europe/Paris");
  assert.equal(config.plugins.cat?.env.API_KEY, "s3cret");
  assert.equal(config.plugins.dog?.enabled, false);
  assert.equal(config.server.listen, "127.0.0.1:9999");
  assert.equal(config.runtime.deno, join(fixtures, "bin/deno"));
  assert.deepEqual(fromEnv.map((p) => p.join(".")), [
    "plugins.cat.env.TZ",
    "plugins.cat.env.API_KEY",
  ]);
});

Deno.test("maskSecrets() hides every value that came from the environment", async () => {
  const loaded = await loadConfig(fixture("full.yaml"), {
    env: env({ PLUGSCONC_TEST_SECRET: "s3cret" }),
  });
  const masked = maskSecrets(loaded) as { plugins: { cat: { env: Record<string, string> } } };
  assert.equal(masked.plugins.cat.env.API_KEY, "***");
  assert.equal(masked.plugins.cat.env.TZ, "UTC"); // the default, not from the environment
  assert.ok(!JSON.stringify(masked).includes("s3cret"));
  assert.equal(loaded.config.plugins.cat?.env.API_KEY, "s3cret"); // original untouched
});

Deno.test("maskSecrets() hides tokens, passwords and url credentials written in the file", () => {
  const config = ConfigSchema.parse({
    server: { token: "gateway-token-0123456789" },
    remote: {
      nats: {
        servers: ["nats://alice:pa55word@10.0.0.5:4222", "nats://tok3n@10.0.0.6:4222"],
        pass: "pa55word",
      },
    },
  });
  const masked = JSON.stringify(maskSecrets({ config, fromEnv: [] } as unknown as LoadedConfig));
  for (const secret of ["gateway-token-0123456789", "pa55word", "tok3n"]) {
    assert.ok(!masked.includes(secret), `${secret} is shown: ${masked}`);
  }
  assert.ok(masked.includes("nats://alice:***@10.0.0.5:4222"));
  assert.ok(masked.includes("nats://***@10.0.0.6:4222"));
});

Deno.test("an empty config file yields the full default config", async () => {
  const { config } = await loadConfig(fixture("empty.yaml"));
  assert.deepEqual(
    { ...config, dirs: undefined, logging: undefined },
    { ...ConfigSchema.parse({}), dirs: undefined, logging: undefined },
  );
  assert.equal(config.dirs.plugins, join(fixtures, "plugins"));
  assert.equal(config.logging.store.db_file, join(fixtures, "data/logs.db"));
});

Deno.test("a missing optional config yields defaults; a missing required one is an error", async () => {
  const missing = fixture("does-not-exist.yaml");
  const { config, file } = await loadConfig(missing, { optional: true });
  assert.equal(file, undefined);
  assert.equal(config.security.policy, "strict");
  const e = await configError(loadConfig(missing));
  assert.equal(e.code, "CONFIG_NOT_FOUND");
  assert.match(e.message, /does-not-exist\.yaml: config file not found/);
});

Deno.test("an unknown key is refused with its name, line and a suggestion", async () => {
  const e = await configError(loadConfig(fixture("unknown_key.yaml")));
  assert.equal(e.code, "CONFIG_INVALID");
  const [issue] = e.issues;
  assert.equal(e.issues.length, 1);
  assert.equal(issue?.path, "logging.levle");
  assert.equal(issue?.line, 4);
  assert.equal(issue?.column, 3);
  assert.match(issue?.found ?? "", /levle/);
  assert.match(issue?.expected ?? "", /level/);
  assert.match(
    e.message,
    /unknown_key\.yaml:4:3: logging\.levle: unknown key \(did you mean "level"\?\)/,
  );
});

Deno.test("a value of the wrong type names what was found and what was expected", async () => {
  const e = await configError(loadConfig(fixture("wrong_type.yaml")));
  const [issue] = e.issues;
  assert.equal(issue?.path, "defaults.timeout_ms");
  assert.equal(issue?.line, 2);
  assert.equal(issue?.column, 15);
  assert.equal(issue?.found, 'string "five seconds"');
  assert.equal(issue?.expected, "number");
});

Deno.test("an unset ${VAR} without a default is refused with the variable's name", async () => {
  const e = await configError(loadConfig(fixture("bad_env.yaml"), { env: env({}) }));
  assert.equal(e.code, "CONFIG_ENV");
  assert.equal(e.issues[0]?.path, "server.token");
  assert.equal(e.issues[0]?.line, 2);
  assert.match(e.message, /PLUGSCONC_SURELY_UNSET_VARIABLE is not set/);
});

Deno.test("${VAR} expansion handles defaults, escapes and malformed references", () => {
  const vars = env({ HOST: "example.org", EMPTY: "" });
  const ok = parseConfig(
    'app: { name: "${HOST}", environment: "$${HOST}-${EMPTY:-fallback}-${NOPE:-}" }',
    "inline.yaml",
    { env: vars },
  );
  assert.equal(ok.config.app.name, "example.org");
  assert.equal(ok.config.app.environment, "${HOST}-fallback-");
  for (const bad of ["${HOST", "${1BAD}", "${}"]) {
    assert.throws(
      () => parseConfig(`app: { name: "${bad}" }`, "inline.yaml", { env: vars }),
      (e: unknown) => e instanceof ConfigError && e.code === "CONFIG_ENV" && e.issues.length === 1,
      bad,
    );
  }
});

Deno.test("a YAML alias bomb is refused quickly with a clear error", async () => {
  const started = performance.now();
  const e = await configError(loadConfig(fixture("alias_bomb.yaml")));
  assert.equal(e.code, "CONFIG_YAML");
  assert.match(e.message, /alias/);
  // Not a timing assertion on speed: 9^9 nodes would take minutes and gigabytes.
  assert.ok(performance.now() - started < 30_000);
});

Deno.test("10,000-deep nesting is refused before parsing, without a stack overflow", async () => {
  const e = await configError(loadConfig(fixture("deep_nesting.yaml")));
  assert.equal(e.code, "CONFIG_YAML");
  assert.equal(e.issues[0]?.line, 1);
  assert.match(e.message, /nest/);
});

Deno.test("a 5 MiB file is refused before parsing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const big = join(dir, "big.yaml");
    await Deno.writeTextFile(big, `app:\n  name: "${"x".repeat(5 * 1024 * 1024)}"\n`);
    const e = await configError(loadConfig(big));
    assert.equal(e.code, "CONFIG_TOO_LARGE");
    assert.match(e.message, /larger than the limit of 1048576 bytes/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a YAML syntax error carries its line and column", async () => {
  const e = await configError(loadConfig(fixture("bad_syntax.yaml")));
  assert.equal(e.code, "CONFIG_YAML");
  assert.ok((e.issues[0]?.line ?? 0) >= 2, e.message);
});

Deno.test("duplicate keys are refused", () => {
  assert.throws(
    () => parseConfig("app:\n  name: a\n  name: b\n", "dup.yaml"),
    (e: unknown) =>
      e instanceof ConfigError && e.code === "CONFIG_YAML" && /dup\.yaml:3/.test(e.message),
  );
});

Deno.test("the default config.yaml in the repository is valid", async () => {
  const { config } = await loadConfig(resolve(import.meta.dirname!, "../../config.yaml"));
  assert.equal(config.security.policy, "strict");
});

Deno.test("a timeout beyond what a timer can hold (2^31-1 ms) is refused at load, not at the first call", () => {
  assert.throws(
    () => parseConfig("defaults:\n  timeout_ms: 99999999999\n", "big.yaml"),
    (e: unknown) =>
      e instanceof ConfigError && /big\.yaml:2:15: defaults\.timeout_ms: too large/.test(e.message),
  );
});

Deno.test("a failure_ratio of 1 is refused: the breaker needs a share below 1", () => {
  assert.throws(
    () =>
      parseConfig("defaults:\n  circuit_breaker: { mode: ratio, failure_ratio: 1 }\n", "r.yaml"),
    (e: unknown) =>
      e instanceof ConfigError &&
      /defaults\.circuit_breaker\.failure_ratio: too large/.test(e.message),
  );
});
