import { getLogger } from "@logtape/logtape";
import type { PluginHostEvents } from "./host_events.ts";

const log = getLogger(["plugsconc", "host"]);

/** Reports one host event to its listeners. */
export type Emit = <K extends keyof PluginHostEvents>(type: K, event: PluginHostEvents[K]) => void;

/** The listeners of the host's events, by event name (what `PluginHost.on` adds to). */
export class HostListeners {
  readonly #listeners: { [K in keyof PluginHostEvents]: Set<(e: PluginHostEvents[K]) => void> } = {
    state: new Set(),
    change: new Set(),
  };

  /** Adds `listener` until the returned function is called; an unknown `type` is a `RangeError`. */
  on<K extends keyof PluginHostEvents>(
    type: K,
    listener: (event: PluginHostEvents[K]) => void,
  ): () => void {
    const set = this.#listeners[type] as Set<(e: PluginHostEvents[K]) => void>;
    if (set === undefined) throw new RangeError(`unknown event ${JSON.stringify(type)}`);
    set.add(listener);
    return () => void set.delete(listener);
  }

  /** Calls every listener of `type`; one that throws is logged and the others still run. */
  readonly emit: Emit = (type, event) => {
    for (
      const listener of this.#listeners[type] as Set<(e: PluginHostEvents[typeof type]) => void>
    ) {
      try {
        listener(event);
      } catch (error) {
        log.error("a listener of host event {type} threw: {error}", { type, error });
      }
    }
  };
}
