/** Options of one call. */
export interface CallOptions {
  /** Aborting it cancels the call (the plugin gets `$/cancel`). */
  signal?: AbortSignal;
  /** Overrides the configured timeout. */
  timeoutMs?: number;
}
