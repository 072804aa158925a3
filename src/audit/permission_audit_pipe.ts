import { join } from "node:path";
import { MAX_CHECK_LINE } from "./permission_check.ts";

/** Options of {@linkcode PermissionAuditPipe.open}. */
export interface PermissionAuditPipeOptions {
  /** Folder for the FIFO: host-owned and outside every grant of the plugin. */
  readonly dir: string;
  /** Gets every line (without its newline; lines over 8 KiB are cut to an empty one). */
  readonly onLine: (line: string) => void;
  /** How long {@linkcode PermissionAuditPipe.close} waits for the stream to end; default 2000 ms. */
  readonly drainMs?: number;
  /** How long the reader waits after a read that did not fill its buffer; default 100 ms. */
  readonly pollMs?: number;
}

/**
 * The FIFO a plugin process writes its `DENO_AUDIT_PERMISSIONS` lines to. A FIFO, not a file:
 * Deno writes the audit file without `O_APPEND` and never rotates it, so a file could not be
 * bounded (truncating it leaves a sparse file growing at Deno's offset); a pipe holds at most
 * its kernel buffer, and the host reads it as fast as it comes (the plugin blocks, never the
 * host, if the host falls behind). Deno opens the file when the runtime starts, so the host's
 * open (pending until then) completes at once; if the process dies before that,
 * {@linkcode close} opens the write end itself to end the pending open.
 */
export class PermissionAuditPipe implements AsyncDisposable {
  /** The FIFO's path: the value of `DENO_AUDIT_PERMISSIONS`. */
  readonly path: string;
  readonly #options: PermissionAuditPipeOptions;
  #opened = false;
  #file: Deno.FsFile | undefined;
  readonly #done: Promise<void>;
  #closing: Promise<void> | undefined;
  #draining = false;
  #wake: (() => void) | undefined;

  private constructor(path: string, options: PermissionAuditPipeOptions) {
    this.path = path;
    this.#options = options;
    // Never rejects: a read error only ends the stream.
    this.#done = this.#read().catch(() => {});
  }

  /**
   * Makes the FIFO (`mkfifo -m 600`) and starts reading it.
   *
   * @throws {Error} when the FIFO cannot be made (no `mkfifo`, e.g. on Windows)
   */
  static async open(options: PermissionAuditPipeOptions): Promise<PermissionAuditPipe> {
    await Deno.mkdir(options.dir, { recursive: true, mode: 0o700 });
    const path = join(options.dir, `${crypto.randomUUID()}.fifo`);
    const out = await new Deno.Command("mkfifo", {
      args: ["-m", "600", path],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`mkfifo ${path} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    return new PermissionAuditPipe(path, options);
  }

  async #read(): Promise<void> {
    const file = await Deno.open(this.path, { read: true });
    this.#opened = true;
    this.#file = file;
    const decoder = new TextDecoder();
    const buf = new Uint8Array(64 * 1024);
    let pending = "";
    let cut = false;
    try {
      while (true) {
        const n = await file.read(buf);
        if (n === null) break;
        pending += decoder.decode(buf.subarray(0, n), { stream: true });
        let from = 0;
        let nl: number;
        while ((nl = pending.indexOf("\n", from)) >= 0) {
          this.#options.onLine(cut ? "" : pending.slice(from, nl));
          cut = false;
          from = nl + 1;
        }
        pending = pending.slice(from);
        if (pending.length > MAX_CHECK_LINE) {
          // A line that long is no check: drop it up to its newline, keep memory flat.
          pending = "";
          cut = true;
        }
        // Read in batches: one wake-up per `pollMs`, not per check (a wake-up per line cost
        // calls ~50 us each). A plugin that fills the pipe's 64 KiB meanwhile waits for the
        // host, which is the audit's rate limit on the plugin side.
        if (n < buf.length && !this.#draining) await this.#pause();
      }
    } catch {
      // Closed by close() after the drain timeout.
    } finally {
      this.#file = undefined;
    }
  }

  #pause(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, this.#options.pollMs ?? 100);
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }

  /** Waits (at most `drainMs`) for the writer to finish, then removes the FIFO. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#draining = true;
      this.#wake?.();
      if (!this.#opened) {
        // The process never opened its end: end our pending open with a writer of our own.
        const w = await Deno.open(this.path, { write: true }).catch(() => undefined);
        w?.close();
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([
          this.#done,
          new Promise<void>((r) => (timer = setTimeout(r, this.#options.drainMs ?? 2000))),
        ]);
      } finally {
        clearTimeout(timer);
      }
      try {
        this.#file?.close();
      } catch { /* already closed */ }
      await this.#done.catch(() => {});
      await Deno.remove(this.path).catch(() => {});
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
