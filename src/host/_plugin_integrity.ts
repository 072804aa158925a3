import { getLogger } from "@logtape/logtape";
import { auditEvent } from "../audit/mod.ts";
import type { Config } from "../config/mod.ts";
import {
  assertVerified,
  checksumFilePath,
  digestPlugin,
  IntegrityError,
  verifyPlugin,
} from "../integrity/mod.ts";
import type { PluginDescriptor } from "../manifest/mod.ts";
import { WorkerPool } from "../pool/mod.ts";

const log = getLogger(["plugsconc", "host"]);

/**
 * The host's integrity checks of plugin folders: at each spawn, and when a change batch leaves
 * a signed plugin serving. Files are hashed in the host's pool.
 */
export class PluginIntegrity {
  readonly #config: Config;
  readonly #pool: WorkerPool | undefined;
  /** The folder digest each signed plugin version was last verified with at a spawn. */
  readonly #verified = new WeakMap<PluginDescriptor, string>();
  /**
   * New versions (from a change batch) that replace a signed running version, with the plugin
   * digest that version was verified with: they must be signed too (see {@linkcode requireSigned}).
   */
  readonly #mustBeSigned = new WeakMap<PluginDescriptor, string>();

  constructor(config: Config, pool: WorkerPool | undefined) {
    this.#config = config;
    this.#pool = pool;
  }

  /**
   * Marks `next`, a new version of a plugin from a change batch, as one that must be signed
   * when the `running` version was verified against a checksum: its {@linkcode verify} (at its
   * spawn, and each restart) then refuses it with `CHECKSUM_MISSING` if it has neither a
   * `.sha256` file nor `security.checksum`, instead of starting it unsigned (deleting the
   * checksum file with an edit would otherwise downgrade a signed plugin silently).
   */
  requireSigned(running: PluginDescriptor | undefined, next: PluginDescriptor): void {
    const verified = running === undefined ? undefined : this.#verified.get(running);
    if (verified !== undefined) this.#mustBeSigned.set(next, verified);
  }

  /**
   * Checks the plugin folder (every file and symlink but the checksum file, the manifest with
   * its `security.checksum` value zeroed, exactly as `plugins verify`) against
   * `<entrypoint>.sha256` and `security.checksum` when the plugin has either (or
   * `security.require_checksums` is on, or it replaces a signed version: {@linkcode
   * requireSigned}), hashing its files in the pool. A signed plugin's digest is remembered: a
   * later change batch compares against it.
   *
   * @throws {IntegrityError} `CHECKSUM_MISMATCH`, or `CHECKSUM_MISSING` when a checksum is
   *   required or the version it replaces was signed
   */
  async verify(plugin: PluginDescriptor, signal: AbortSignal): Promise<void> {
    const required = this.#config.security.require_checksums;
    const declared = plugin.manifest.security.checksum !== undefined ||
      await Deno.stat(checksumFilePath(plugin)).then(() => true, () => false);
    const signedBefore = this.#mustBeSigned.get(plugin);
    const downgrade = () =>
      new IntegrityError(
        "CHECKSUM_MISSING",
        `plugin ${plugin.name}: the running version was signed (its folder verified as sha256 ` +
          `${signedBefore}) and the new version is not (no ${checksumFilePath(plugin)}, no ` +
          "security.checksum), so it is not loaded and the running version is stopped, as it " +
          `could load the changed files. Re-sign it (\`plugsconc plugins checksum ${plugin.name}\`) ` +
          "or, to accept an unsigned plugin, restart the host",
        { plugin: plugin.name, details: { signedAs: signedBefore, downgrade: true } },
      );
    if (!declared && signedBefore !== undefined) throw downgrade();
    if (!required && !declared) return;
    const result = await this.#hash((pool) => verifyPlugin(pool, plugin, { signal }));
    // The checksum file may have gone since the stat above.
    if (result.status === "unsigned" && signedBefore !== undefined) throw downgrade();
    try {
      assertVerified(result, { required });
    } catch (e) {
      const code = (e as IntegrityError).code;
      auditEvent({
        kind: "checksum.refused",
        plugin: plugin.name,
        detail: { code, actual: result.actual },
      });
      throw e;
    }
    if (result.status === "ok") this.#verified.set(plugin, result.actual);
    log.info("plugin {plugin}: code matches its checksum {sha256}", {
      plugin: plugin.name,
      sha256: result.actual,
    });
  }

  /**
   * Why the running `plugin` no longer verifies, if it does not: the reload failed with
   * `CHECKSUM_MISMATCH` (`reloadError`), or with `CHECKSUM_MISSING` while the running version
   * was signed (the new one is not), or it was verified against a checksum at its spawn and
   * its folder no longer hashes to that digest (or cannot be hashed).
   */
  async tampered(
    plugin: PluginDescriptor,
    reloadError?: unknown,
  ): Promise<IntegrityError | undefined> {
    if (reloadError instanceof IntegrityError && reloadError.code === "CHECKSUM_MISMATCH") {
      return reloadError;
    }
    const verified = this.#verified.get(plugin);
    if (verified === undefined) return undefined;
    if (reloadError instanceof IntegrityError && reloadError.code === "CHECKSUM_MISSING") {
      return reloadError;
    }
    try {
      const now = await this.#hash((pool) => digestPlugin(pool, plugin));
      if (now.hex === verified) return undefined;
      return new IntegrityError(
        "CHECKSUM_MISMATCH",
        `plugin ${plugin.name}: its folder changed since its code was verified ` +
          `(sha256 ${verified} then, ${now.hex} now) and the change was not loaded; the ` +
          "running version is stopped, as it could load the changed files. If the change " +
          `is intended, run \`plugsconc plugins checksum ${plugin.name}\``,
        { plugin: plugin.name, details: { expected: verified, actual: now.hex } },
      );
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      return e;
    }
  }

  async #hash<T>(job: (pool: WorkerPool) => Promise<T>): Promise<T> {
    // With the pool off, a one-worker pool hashes and goes away.
    await using temporary = this.#pool ? undefined : new WorkerPool({ maxWorkers: 1 });
    return await job(this.#pool ?? temporary!);
  }
}
