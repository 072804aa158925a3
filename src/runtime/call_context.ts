/**
 * What the host keeps about one call in flight to a plugin process, for the calls that
 * plugin makes to other plugins while serving it (`host/plugins.call`): who led to it, until
 * when it may run, and a signal that aborts when it ends.
 */
export interface CallContext {
  /** The plugins whose calls led here, outermost first, ending with this process's plugin. */
  readonly chain: readonly string[];
  /** `performance.now()` when the call times out; `undefined` for a call without a timeout. */
  readonly deadline: number | undefined;
  /** Aborts when the call ends (answered, failed, timed out or cancelled). */
  readonly signal: AbortSignal;
}

/**
 * The context of a call made with `options` to a process of `plugin` (its chain defaults to
 * `[plugin]`, its deadline is `timeoutMs` from now), ended by aborting `ended`.
 */
export function callContext(
  plugin: string,
  options: { readonly timeoutMs?: number; readonly chain?: readonly string[] },
  ended: AbortController,
): CallContext {
  return {
    chain: options.chain ?? [plugin],
    deadline: options.timeoutMs === undefined ? undefined : performance.now() + options.timeoutMs,
    signal: ended.signal,
  };
}
