/**
 * The Unix-socket transport of a plugin process (`unix1`, README "Wire protocol"): a socket
 * the host listens on in a folder of its own, which only that plugin process is granted.
 *
 * @module
 */
import { join } from "node:path";
import { SOCKET_ENV } from "../sandbox/socket_grants.ts";

/** What `$/ready` says in `transport` when it came over the socket. */
export const TRANSPORT_UNIX = "unix1";
/**
 * The capabilities a plugin process running as root must not have for the socket's folder to
 * hold (`setpriv --bounding-set`): with them, root ignores the folder's mode and could replace
 * the socket by a file of any size (its grant covers the path).
 */
export const ROOT_CAPS_DROPPED = "-dac_override,-dac_read_search,-fowner";

/** Whether a plugin process may get a socket here (see {@linkcode PluginSocket.open}). */
export function socketSupported(setpriv: string | undefined): boolean {
  if (Deno.build.os === "windows") return false;
  // As root, only with the capabilities that override file modes dropped (by setpriv).
  return Deno.uid() !== 0 || setpriv !== undefined;
}

/**
 * One plugin process's socket. The folder is new (`mkdtemp`, under the system's temporary
 * folder so that the path fits the 107 bytes of a socket address); once the socket is bound it
 * is mode 0600 and the folder 0500, so nothing can be added to it, removed from it or renamed in
 * it (as root, with {@linkcode ROOT_CAPS_DROPPED} dropped from the plugin). The plugin is granted
 * exactly the socket's path (`--allow-read`, `--allow-write`, `--allow-net=unix:<path>`). The
 * host accepts one connection and then stops listening.
 */
export class PluginSocket implements AsyncDisposable {
  readonly path: string;
  readonly #dir: string;
  readonly #listener: Deno.UnixListener;
  #accepted: Promise<Deno.UnixConn | undefined> | undefined;
  #conn: Deno.UnixConn | undefined;
  #closed = false;

  private constructor(dir: string, path: string, listener: Deno.UnixListener) {
    this.#dir = dir;
    this.path = path;
    this.#listener = listener;
  }

  /** A socket listening in a new folder. */
  static async open(): Promise<PluginSocket> {
    const dir = await Deno.makeTempDir({ prefix: "plugsconc-" });
    const path = join(dir, "s");
    let listener: Deno.UnixListener | undefined;
    try {
      listener = Deno.listen({ transport: "unix", path });
      await Deno.chmod(path, 0o600);
      await Deno.chmod(dir, 0o500);
      return new PluginSocket(dir, path, listener);
    } catch (error) {
      listener?.close();
      await removeFolder(dir);
      throw error;
    }
  }

  /** The grants and env the plugin process gets for it. */
  get env(): Record<string, string> {
    return { [SOCKET_ENV]: this.path };
  }

  /** The connection, once {@linkcode PluginSocket.accept} has one. */
  get conn(): Deno.UnixConn | undefined {
    return this.#conn;
  }

  /**
   * The first connection (`undefined` once closed without one); the listener stops at once
   * after it, so no second connection is ever accepted.
   */
  accept(): Promise<Deno.UnixConn | undefined> {
    return this.#accepted ??= (async () => {
      try {
        const conn = await this.#listener.accept();
        if (this.#closed) {
          conn.close();
          return undefined;
        }
        this.#conn = conn;
        return conn;
      } catch {
        return undefined; // closed
      } finally {
        this.#closeListener();
      }
    })();
  }

  /** Closes the connection and the listener, and removes the folder. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeListener();
    try {
      this.#conn?.close();
    } catch { /* closed already */ }
    await removeFolder(this.#dir);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #closeListener(): void {
    try {
      this.#listener.close();
    } catch { /* closed already */ }
  }
}

async function removeFolder(dir: string): Promise<void> {
  try {
    await Deno.chmod(dir, 0o700);
    await Deno.remove(dir, { recursive: true });
  } catch { /* gone already */ }
}
