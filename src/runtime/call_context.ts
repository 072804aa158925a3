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

/**
 * The most restrictive of `contexts` (the calls a process has in flight): every plugin of
 * their chains, the earliest deadline, and a signal that aborts when any of them ends;
 * `undefined` when there are none. What a `host/plugins.call` that names none of its
 * process's calls gets: a plugin cannot shed its chain (and so escape the cycle check, the
 * depth limit or a deadline) by leaving out which call it is made for.
 */
export function strictestContext(contexts: Iterable<CallContext>): CallContext | undefined {
  const all = [...contexts];
  if (all.length <= 1) return all[0];
  const plugins = new Set<string>();
  for (const c of all) for (const p of c.chain.slice(0, -1)) plugins.add(p);
  // Every chain ends with the process's own plugin.
  const own = all[0]!.chain.at(-1)!;
  plugins.delete(own);
  const deadlines = all.flatMap((c) => c.deadline === undefined ? [] : [c.deadline]);
  return {
    chain: [...plugins, own],
    deadline: deadlines.length === 0 ? undefined : Math.min(...deadlines),
    signal: AbortSignal.any(all.map((c) => c.signal)),
  };
}
