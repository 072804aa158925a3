/**
 * Where a plugin process's protocol bytes come from: its stdout, or (once it connected) its
 * Unix socket. Each source goes through a log gate of its own into the one JSON-RPC peer; after
 * the switch, stdout is plain text, split and logged like stderr. @module
 */
import type { JsonRpcPeer } from "../rpc/mod.ts";
import { LogGate } from "./log_gate.ts";
import { LineSplitter } from "./line_splitter.ts";
import type { PluginLog } from "./plugin_log.ts";
import type { PluginStreams } from "./plugin_streams.ts";
import { refuseRequest } from "./request_budget.ts";

/** Bytes read from a plugin's stdout, stderr or socket at once (into a reused buffer). */
export const PIPE_CHUNK = 64 * 1024;

/** A log gate into `peer` with the claims of a plugin process (responses, chunks, requests). */
export function protocolGate(
  name: string,
  peer: JsonRpcPeer,
  streams: PluginStreams,
  plugLog: PluginLog,
): LogGate {
  const budget = plugLog.budget;
  const gate = new LogGate(budget, (bytes) => peer.receive(bytes), {
    isPending: (id) => peer.isPending(id),
    claimChunk: (id) => streams.claimChunk(id),
    settleChunk: (id, cut) => streams.settleChunk(id, cut),
    requests: budget.requests,
    refuseRequest: (id) => refuseRequest(peer, name, budget, id),
  });
  streams.lineBytes = () => gate.lineBytes;
  return gate;
}

/** Something bytes are pushed into (a gate, or the text splitter of stdout after the switch). */
export interface Sink {
  push(bytes: Uint8Array): void;
  end(): void;
}

/** Plain text, line by line, to the plugin's log (budgeted, as stderr lines are). */
export function textSink(plugLog: PluginLog): Sink {
  const splitter = new LineSplitter(plugLog.stderrLineBytes);
  const onLine = (line: string) => plugLog.onStderrLine(line);
  return {
    push: (bytes) => splitter.push(bytes, onLine),
    end: () => splitter.end(onLine),
  };
}

/** Reads `conn` into `sink` until it ends (or fails: the process is gone), into one buffer. */
export async function pumpConn(conn: Deno.Conn, sink: Sink): Promise<void> {
  const buf = new Uint8Array(PIPE_CHUNK);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      sink.push(buf.subarray(0, n));
    }
  } catch {
    /* closed */
  } finally {
    sink.end();
  }
}

/** Writes all of `bytes` to `conn` (a write may take only part of them). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}
