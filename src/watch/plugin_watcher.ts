import { getLogger } from "@logtape/logtape";
import { join, relative } from "node:path";
import { isIgnored } from "./glob.ts";

/** The changes to one plugin folder, coalesced over the debounce window. */
export interface ChangeBatch {
  /** The plugin folder's name (first path segment below the watched root). */
  readonly folder: string;
  /** Absolute path of the plugin folder. */
  readonly dir: string;
  /** Changed paths (absolute, unique, sorted); editor swap files and ignored paths excluded. */
  readonly paths: readonly string[];
  /** Kinds of events seen (`create`, `modify`, `remove`, `rename`, ...). */
  readonly kinds: readonly string[];
  /** Whether the folder itself still exists when the batch is emitted. */
  readonly exists: boolean;
}

/** Options for {@link PluginWatcher}. */
export interface PluginWatcherOptions {
  /** The plugins folder, watched recursively. */
  readonly root: string;
  /** Quiet time per plugin folder before its batch is emitted. Default 200 ms. */
  readonly debounceMs?: number;
  /** Segment patterns to ignore (`*` and `?` wildcards). Default: `.git`, `node_modules`, swap files. */
  readonly ignore?: readonly string[];
  /** Receives each batch; batches for one folder are never delivered concurrently. */
  readonly onBatch: (batch: ChangeBatch) => void | Promise<void>;
}

const DEFAULT_IGNORE = [".git", "node_modules", "*.swp", "*.swx", "*~", ".#*", "4913"];

interface Pending {
  paths: Set<string>;
  kinds: Set<string>;
  timer: ReturnType<typeof setTimeout> | undefined;
  firstAt: number;
}

/**
 * Watches the plugins folder with `Deno.watchFs` (recursive) and turns bursts of events into
 * one {@link ChangeBatch} per plugin folder: a save that writes a temp file and renames it, or
 * 50 writes in a second, yields one batch once the folder has been quiet for `debounceMs`
 * (or after 10 x `debounceMs` of continuous changes). When the root is deleted it waits for
 * it to reappear and watches it again, reporting every folder then present.
 */
export class PluginWatcher implements AsyncDisposable {
  readonly #o: Required<PluginWatcherOptions>;
  readonly #log = getLogger(["plugsconc", "watch"]);
  readonly #pending = new Map<string, Pending>();
  readonly #running = new Map<string, Promise<void>>();
  #watcher: Deno.FsWatcher | undefined;
  #closed = false;
  #loop: Promise<void>;
  #restarts = 0;
  #wake: (() => void) | undefined;
  readonly #ready = Promise.withResolvers<void>();

  /** Starts watching at once; {@linkcode PluginWatcher.ready} says when events are seen. */
  constructor(options: PluginWatcherOptions) {
    const debounceMs = options.debounceMs ?? 200;
    if (!(debounceMs >= 1)) throw new RangeError(`debounceMs must be >= 1, got ${debounceMs}`);
    this.#o = { ...options, debounceMs, ignore: options.ignore ?? DEFAULT_IGNORE };
    this.#loop = this.#run();
    this.#loop.finally(() => this.#ready.resolve()).catch(() => {});
  }

  /**
   * Resolves once the first watch is in place (a change made after it is seen), or once the
   * first attempt found no root or failed (the watcher keeps retrying), or on close. A change
   * made before it may be missed: `Deno.watchFs` only reports what happens after it starts.
   */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }

  /** The watched folder. */
  get root(): string {
    return this.#o.root;
  }

  /** How many times the watch was re-established (root deleted and recreated). */
  get rewatches(): number {
    return this.#restarts;
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      if (!(await this.#exists(this.#o.root))) {
        this.#ready.resolve();
        await this.#sleep(Math.max(50, this.#o.debounceMs));
        continue;
      }
      let watcher: Deno.FsWatcher;
      try {
        watcher = Deno.watchFs(this.#o.root, { recursive: true });
      } catch (e) {
        this.#log.warning("cannot watch {root}: {error}; retrying", {
          root: this.#o.root,
          error: String(e),
        });
        this.#ready.resolve();
        await this.#sleep(1000);
        continue;
      }
      this.#watcher = watcher;
      this.#ready.resolve();
      if (this.#closed) {
        // close() ran while the watcher was being created: it could not close this one.
        watcher.close();
        break;
      }
      if (this.#restarts > 0 || this.#pending.size > 0) {
        // After the root came back, whatever is in it now is news.
        for await (const e of Deno.readDir(this.#o.root)) {
          if (e.isDirectory && !isIgnored(e.name, this.#o.ignore)) {
            this.#note(join(this.#o.root, e.name), "create");
          }
        }
      }
      try {
        for await (const event of watcher) {
          for (const path of event.paths) {
            this.#note(path, event.kind);
            if (event.kind === "create") void this.#scanNewFolder(path);
          }
          if (event.paths.includes(this.#o.root) && event.kind === "remove") break;
          if (!(await this.#exists(this.#o.root))) break;
        }
      } catch (e) {
        if (!this.#closed) {
          this.#log.warning("watch of {root} ended: {error}", {
            root: this.#o.root,
            error: String(e),
          });
        }
      } finally {
        try {
          watcher.close();
        } catch { /* already closed */ }
      }
      if (this.#closed) break;
      this.#restarts++;
      this.#log.info("plugins folder {root} disappeared; waiting for it to come back", {
        root: this.#o.root,
      });
    }
  }

  #note(path: string, kind: string): void {
    if (this.#closed) return; // a scan or read still running when close() was called
    const rel = relative(this.#o.root, path);
    if (rel === "" || rel.startsWith("..")) return;
    if (isIgnored(rel, this.#o.ignore)) return;
    const folder = rel.split(/[\\/]/)[0]!;
    let p = this.#pending.get(folder);
    if (p === undefined) {
      p = { paths: new Set(), kinds: new Set(), timer: undefined, firstAt: Date.now() };
      this.#pending.set(folder, p);
    }
    p.paths.add(path);
    p.kinds.add(kind);
    clearTimeout(p.timer);
    const waited = Date.now() - p.firstAt;
    const delay = waited >= this.#o.debounceMs * 10 ? 0 : this.#o.debounceMs;
    p.timer = setTimeout(() => this.#flush(folder), delay);
  }

  /**
   * inotify only watches a new folder once its create event is handled, so files written into
   * it before then (a plugin folder copied in) raise no event. Listing the folder after its
   * create event reports them; the debounce keeps them in the folder's one batch.
   */
  async #scanNewFolder(path: string, depth = 0): Promise<void> {
    if (this.#closed || depth > 8) return;
    try {
      if (!(await Deno.lstat(path)).isDirectory) return;
      for await (const e of Deno.readDir(path)) {
        const child = join(path, e.name);
        if (isIgnored(relative(this.#o.root, child), this.#o.ignore)) continue;
        this.#note(child, "create");
        if (e.isDirectory) await this.#scanNewFolder(child, depth + 1);
      }
    } catch { /* gone again, or unreadable: its events (if any) tell the rest */ }
  }

  #flush(folder: string): void {
    if (this.#closed) return;
    const p = this.#pending.get(folder);
    if (p === undefined) return;
    const previous = this.#running.get(folder);
    if (previous) {
      // One batch per folder at a time: try again when the running one is done.
      p.timer = setTimeout(() => this.#flush(folder), this.#o.debounceMs);
      return;
    }
    this.#pending.delete(folder);
    const dir = join(this.#o.root, folder);
    const run = (async () => {
      const batch: ChangeBatch = {
        folder,
        dir,
        paths: [...p.paths].sort(),
        kinds: [...p.kinds].sort(),
        exists: await this.#exists(dir),
      };
      this.#log.info("change batch for {folder}: {count} path(s)", {
        folder,
        count: batch.paths.length,
        paths: batch.paths,
        kinds: batch.kinds,
      });
      try {
        await this.#o.onBatch(batch);
      } catch (e) {
        this.#log.error("handling the change batch for {folder} failed: {error}", {
          folder,
          error: String(e),
        });
      }
    })().finally(() => this.#running.delete(folder));
    this.#running.set(folder, run);
  }

  async #exists(path: string): Promise<boolean> {
    try {
      await Deno.stat(path);
      return true;
    } catch {
      return false;
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** Stops watching; pending batches are dropped, running ones awaited. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    try {
      this.#watcher?.close();
    } catch { /* already closed */ }
    this.#wake?.();
    await this.#loop;
    await Promise.allSettled(this.#running.values());
  }

  /** Same as {@link PluginWatcher.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
