import type { Logger } from "@logtape/logtape";
import { auditEvent } from "../audit/mod.ts";

/** Refusal records per plugin per {@linkcode REFUSAL_WINDOW_MS}; the rest are counted. */
const REFUSAL_LOGS = 20;
const REFUSAL_WINDOW_MS = 10_000;

/**
 * The process service's refusal records (its audit trail), rate-limited: at most
 * {@linkcode REFUSAL_LOGS} per plugin per {@linkcode REFUSAL_WINDOW_MS}, then one record with
 * the count of those not logged.
 */
export class RefusalLog {
  readonly #log: Logger;
  readonly #plugin: string;
  readonly #kind: string;
  readonly #what: string;
  #window = { start: 0, logged: 0, suppressed: 0 };

  /** `kind`: the audit event's kind; `what`: what was refused, in the count's record. */
  constructor(
    log: Logger,
    plugin: string,
    { kind = "process.refused", what = "process requests" }: { kind?: string; what?: string } = {},
  ) {
    this.#log = log;
    this.#plugin = plugin;
    this.#kind = kind;
    this.#what = what;
  }

  /** Logs one refusal, unless the window's quota is used up (then it is counted). */
  log(reason: string, fields: Record<string, unknown>): void {
    auditEvent({ kind: this.#kind, plugin: this.#plugin, detail: { reason, ...fields } });
    const now = Date.now();
    const w = this.#window;
    if (now - w.start >= REFUSAL_WINDOW_MS) {
      if (w.suppressed > 0) {
        this.#log.warning(
          "plugin {plugin}: {count} more refused {what} were not logged",
          { plugin: this.#plugin, count: w.suppressed, what: this.#what },
        );
      }
      this.#window = { start: now, logged: 0, suppressed: 0 };
    }
    if (this.#window.logged < REFUSAL_LOGS) {
      this.#window.logged++;
      this.#log.warning("plugin {plugin} was refused: {reason}", {
        plugin: this.#plugin,
        reason,
        ...fields,
      });
    } else this.#window.suppressed++;
  }
}
