/** Options of one call. */
export interface CallOptions {
  /** Aborting it cancels the call (the plugin gets `$/cancel`). */
  signal?: AbortSignal;
  /** Overrides the configured timeout. */
  timeoutMs?: number;
  /**
   * Internal: the plugins whose calls led to this one, outermost first (the host sets it for
   * a plugin's `host/plugins.call`; the callee's own calls then see it, for cycle checks).
   */
  chain?: readonly string[];
}
