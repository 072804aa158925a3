import type { ChunkSink } from "../runtime/mod.ts";
import { callTarget } from "./_call_target.ts";
import type { Entry } from "./_entry.ts";
import { PluginStream, type StreamOptions } from "./plugin_stream.ts";

/** One stream's call, as the host sends it through the plugin's pipeline. */
export interface StreamCall {
  readonly signal: AbortSignal;
  readonly sink: ChunkSink;
  readonly timeoutMs: number;
}

/**
 * Sends a streamed call of `name.method` through its pipeline, with the checks `host.call`
 * makes first (unknown plugin or method, protocol methods, a plugin not running, params that
 * fail the method's schema). Resolves with the stream's final result.
 */
export async function streamCall(
  entries: ReadonlyMap<string, Entry>,
  name: string,
  method: string,
  params: unknown,
  call: StreamCall,
): Promise<unknown> {
  const { pipeline } = callTarget(entries, name, method, params);
  return await pipeline.call(method, params, {
    signal: call.signal,
    timeoutMs: call.timeoutMs,
    sink: call.sink,
  });
}

/** A {@linkcode PluginStream} of `name.method` ({@linkcode streamCall} with it as the sink). */
export function openStream(
  entries: ReadonlyMap<string, Entry>,
  name: string,
  method: string,
  params: unknown,
  options: StreamOptions & { readonly timeoutMs: number },
): PluginStream {
  const { timeoutMs } = options;
  return new PluginStream(
    (sink, signal) => streamCall(entries, name, method, params, { signal, sink, timeoutMs }),
    options,
  );
}
