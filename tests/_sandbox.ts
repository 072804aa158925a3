/**
 * Helpers of the sandbox tests (`sandbox_test.ts`, `sandbox_net_test.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { stringify } from "yaml";
import type { PluginHost } from "../src/host/mod.ts";
import { PluginCallError, PluginUnavailableError } from "../src/runtime/mod.ts";
import { SandboxError } from "../src/sandbox/mod.ts";
import { FIXTURE_PLUGINS, makeHome, ROOT, SAMPLE_PLUGINS, type TestHome } from "./_helpers.ts";

export const PROBE = join(FIXTURE_PLUGINS, "probe");
export const HOG = join(ROOT, "tests/fixtures/sandbox/hog");
export const DIALER = join(ROOT, "tests/fixtures/sandbox/dialer");
export const IMPORTER = join(ROOT, "tests/fixtures/sandbox/importer");
export const CAT = join(SAMPLE_PLUGINS, "cat");
export const FETCH = join(SAMPLE_PLUGINS, "fetch");

/** A manifest rewrite appending `capabilities` to a fixture manifest that has none. */
export function withCapabilities(capabilities: Record<string, unknown>): (text: string) => string {
  return (text) => {
    assert.doesNotMatch(text, /^capabilities:/m, "the fixture manifest must start with none");
    return `${text.trimEnd()}\n${stringify({ capabilities })}`;
  };
}

/** Copies the probe plugin into `home` with `capabilities`; returns the plugin folder. */
export function addProbe(
  home: TestHome,
  capabilities: Record<string, unknown>,
  as?: string,
): Promise<string> {
  return home.addPlugin(PROBE, { as, manifest: withCapabilities(capabilities) });
}

/**
 * A test home whose host does not watch the plugins folder: these tests change plugin folders
 * only before the host starts, and hot reload is not what they test.
 */
export function sandboxHome(config: Record<string, unknown> = {}): Promise<TestHome> {
  return makeHome({ watcher: { enabled: false }, ...config });
}

/** The private data folder the host gives plugin `name` (`${DATA_DIR}`). */
export function dataDirOf(home: TestHome, name: string): string {
  return join(home.dir, "data", "plugins", name);
}

/** What `promise` rejects with; fails the test if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  return assert.fail("expected the call to fail");
}

/**
 * Asserts that the call failed inside the plugin with Deno's NotCapable (the SDK sends the
 * error class name, so it is in the message) and returns the message.
 */
export async function assertNotCapable(call: Promise<unknown>): Promise<string> {
  const error = await rejection(call);
  assert.ok(error instanceof PluginCallError, `expected a PluginCallError, got ${error}`);
  assert.match(error.message, /NotCapable/);
  return error.message;
}

/**
 * Asserts that plugin `name` was refused before any process ran: `failed`, no pid, an error
 * in `plugins()`, and calls rejected with the host's `SandboxError` as the cause.
 */
export async function refusal(host: PluginHost, name: string): Promise<SandboxError> {
  const info = host.plugins().find((p) => p.name === name);
  assert.ok(info, `plugin ${name} is not managed by the host`);
  assert.equal(info.state, "failed");
  assert.equal(info.pid, undefined);
  assert.equal(host.supervisor(name)?.process, undefined, "no process may have been spawned");
  const error = await rejection(host.call(name, "env", { name: "X" }));
  assert.ok(error instanceof PluginUnavailableError, `got ${error}`);
  assert.ok(error.cause instanceof SandboxError, `the cause is ${error.cause}`);
  assert.equal(info.error, error.cause.message);
  return error.cause;
}

/** The value of a `--flag=a,b` argument, split on commas (empty when absent). */
export function flagValues(argv: readonly string[] | undefined, flag: string): string[] {
  const arg = argv?.find((a) => a.startsWith(`${flag}=`));
  return arg === undefined ? [] : arg.slice(flag.length + 1).split(",");
}
