/**
 * The SDK's side of the transport: the plugin's Unix socket when the host gave it one
 * (`PLUGSCONC_SOCKET`, README "Wire protocol"), else stdin and stdout. @module
 */
import type { JsonRpcPeer, SendFn } from "../rpc/mod.ts";
import { StdoutWriter } from "./_stdout_writer.ts";

/** Where the protocol runs, seen from the plugin. */
export interface Channel {
  /** What `$/ready` says in `transport` (`undefined`: stdio, said by saying nothing). */
  readonly transport: "unix1" | undefined;
  readonly send: SendFn;
  /** Whether the peer should gather a tick's messages into one `send` (an async `send`). */
  readonly gather: boolean;
  /** Feeds what the host sends into `peer` until the host closes (or stdin closes). */
  read(peer: JsonRpcPeer): Promise<void>;
  /** Resolves once everything sent so far is written. */
  flush(): Promise<void>;
  /** Writes what it can at once (before an exit). */
  flushSync(): void;
}

const SOCKET_ENV = "PLUGSCONC_SOCKET";
const BUFFER = 256 * 1024;

/** The socket when the host offers one and it connects; stdio otherwise. */
export async function openChannel(transport: "auto" | "stdio"): Promise<Channel> {
  let path: string | undefined;
  // Asked first: a host that offers no socket grants no such variable, and a denied read would
  // show in the plugin's permission audit (a query does not).
  const offered = transport === "auto" &&
    Deno.permissions.querySync({ name: "env", variable: SOCKET_ENV }).state === "granted";
  if (offered) path = Deno.env.get(SOCKET_ENV);
  if (path !== undefined && path !== "" && Deno.build.os !== "windows") {
    try {
      return socketChannel(await Deno.connect({ transport: "unix", path }));
    } catch (e) {
      Deno.stderr.writeSync(
        new TextEncoder().encode(`plugsconc sdk: no socket (${String(e)}); using stdio\n`),
      );
    }
  }
  return stdioChannel();
}

function stdioChannel(): Channel {
  const stdout = new StdoutWriter((bytes) => Deno.stdout.writeSync(bytes));
  return {
    transport: undefined,
    send: stdout.send,
    gather: false,
    read: (peer) => readInto(peer, (buf) => Deno.stdin.read(buf)),
    flush: () => Promise.resolve(stdout.flush()),
    flushSync: () => stdout.flush(),
  };
}

function socketChannel(conn: Deno.UnixConn): Channel {
  let last: Promise<void> = Promise.resolve();
  let pending = 0;
  const send = (bytes: Uint8Array): Promise<void> => {
    pending++;
    last = (async () => {
      try {
        let off = 0;
        while (off < bytes.length) off += await conn.write(bytes.subarray(off));
      } finally {
        pending--;
      }
    })();
    return last;
  };
  return {
    transport: "unix1",
    send,
    gather: true,
    async read(peer) {
      // The host closing stdin (or the socket) ends the plugin, as with stdio; stdin carries
      // nothing else, so reading it costs nothing per message.
      const stdinClosed = readInto(undefined, (buf) => Deno.stdin.read(buf));
      await Promise.race([readInto(peer, (buf) => conn.read(buf)), stdinClosed]);
    },
    async flush() {
      // The peer sends what queued behind a write when it settles: wait until none is left.
      while (pending > 0) {
        await last.catch(() => {});
        await Promise.resolve();
      }
    },
    flushSync() {/* a socket write cannot be waited for here */},
  };
}

/** Reads with `read` into one reused buffer, into `peer` (or nowhere), until the end. */
async function readInto(
  peer: JsonRpcPeer | undefined,
  read: (buf: Uint8Array) => Promise<number | null>,
): Promise<void> {
  const buf = new Uint8Array(BUFFER);
  try {
    for (;;) {
      const n = await read(buf);
      if (n === null) return;
      peer?.receive(buf.subarray(0, n));
    }
  } catch {
    /* closed */
  }
}
