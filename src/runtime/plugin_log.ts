import { getLogger, type Logger, type LogLevel, withContext } from "@logtape/logtape";
import type { RpcError } from "../rpc/mod.ts";
import { LogBudget } from "./log_budget.ts";
import { capRecord, jsonLength, messageRoom } from "./record_cap.ts";

/** Options for {@link PluginLog}. */
export interface PluginLogOptions {
  /** The plugin's name (the `plugin` field of each record). */
  readonly plugin: string;
  /** Its budget, shared by its instances and restarts. Default: a budget of the defaults. */
  readonly budget?: LogBudget;
  /** Where its records go. Default: `plugsconc.plugin.<name>`. */
  readonly logger?: Logger;
  /** LogTape's implicit context of the call in flight with this request id, if any. */
  readonly contextOf?: (request: number) => Record<string, unknown> | undefined;
}

const LEVELS: Readonly<Record<string, LogLevel>> = {
  trace: "trace",
  debug: "debug",
  info: "info",
  warn: "warning",
  warning: "warning",
  error: "error",
  fatal: "fatal",
};

/** A plugin's level name as a LogTape level (`info` for anything unknown; never copies much). */
function levelOf(level: unknown): LogLevel {
  return typeof level === "string" && level.length <= 8
    ? LEVELS[level.toLowerCase()] ?? "info"
    : "info";
}

/** Logs at a level chosen at run time. */
function logAt(logger: Logger, level: LogLevel, message: string, props: Record<string, unknown>) {
  switch (level) {
    case "trace":
      return logger.trace(message, props);
    case "debug":
      return logger.debug(message, props);
    case "info":
      return logger.info(message, props);
    case "warning":
      return logger.warn(message, props);
    case "error":
      return logger.error(message, props);
    case "fatal":
      return logger.fatal(message, props);
  }
}

/** What the size of a dropped record is known to be: a cheap look, never a walk of all of it. */
const DROP_LOOK = 4096;

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * Turns what a plugin writes into host log records: its `$/log` notifications, stderr lines
 * (JSON lines with a string `message` become structured records), protocol warnings and unknown
 * notifications. Each passes the plugin's {@link LogBudget} first (records dropped there cost
 * a check and a count), then is cut to `max_record_bytes` (`capRecord`) before it reaches
 * LogTape. Control characters in messages are escaped, so a plugin cannot drive a terminal.
 */
export class PluginLog {
  /** The budget its records pass. */
  readonly budget: LogBudget;
  readonly #plugin: string;
  readonly #log: Logger;
  readonly #contextOf: PluginLogOptions["contextOf"];

  constructor(options: PluginLogOptions) {
    this.#plugin = options.plugin;
    this.budget = options.budget ?? new LogBudget(options.plugin);
    this.#log = options.logger ?? getLogger(["plugsconc", "plugin", options.plugin]);
    this.#contextOf = options.contextOf;
  }

  /**
   * The longest stderr line worth reading: a line splitter cuts there, below the record cap,
   * so that its marker (`…[truncated N bytes]`) is what shows.
   */
  get stderrLineBytes(): number {
    return Math.max(16, messageRoom(this.budget.maxRecordBytes) - 64);
  }

  /** A `$/log` notification: `{ level, message, fields, request }`. */
  onLog(params: unknown): void {
    const p = isObject(params) ? params : {};
    const level = levelOf(p.level);
    if (!this.#log.isEnabledFor(level)) return;
    const budget = this.budget;
    if (!budget.take()) {
      const m = p.message;
      budget.drop(
        (typeof m === "string" ? m.length : 0) + jsonLength(p.fields, DROP_LOOK),
      );
      return;
    }
    const record = capRecord(
      messageText(p.message, budget.maxRecordBytes),
      isObject(p.fields) ? p.fields : undefined,
      budget.maxRecordBytes,
    );
    budget.spend(record.sentBytes);
    const emit = () =>
      logAt(this.#log, level, "{message}", {
        ...record.fields,
        plugin: this.#plugin,
        message: record.message,
      });
    const context = typeof p.request === "number" ? this.#contextOf?.(p.request) : undefined;
    if (context === undefined) emit();
    else withContext(context, emit);
  }

  /** One stderr line (already cut to {@link PluginLog.stderrLineBytes} by the splitter). */
  onStderrLine(raw: string): void {
    const budget = this.budget;
    if (!budget.take()) {
      budget.drop(raw.length);
      return;
    }
    if (raw.startsWith("{")) {
      let o: unknown;
      try {
        o = JSON.parse(raw);
      } catch { /* plain text */ }
      if (isObject(o) && typeof o.message === "string") {
        const { level, message, ...fields } = o;
        const record = capRecord(message, fields, budget.maxRecordBytes);
        budget.spend(record.sentBytes);
        logAt(this.#log, levelOf(level), "{message}", {
          ...record.fields,
          plugin: this.#plugin,
          stream: "stderr",
          message: record.message,
        });
        return;
      }
    }
    const record = capRecord(raw, undefined, budget.maxRecordBytes);
    budget.spend(record.sentBytes);
    this.#log.info("{message}", {
      plugin: this.#plugin,
      stream: "stderr",
      message: record.message,
    });
  }

  /** A bad stdout line (not JSON, not UTF-8, not a JSON-RPC message); `count` so far. */
  onProtocolWarning(error: RpcError, count: number): void {
    if (!this.#log.isEnabledFor("warning") || !this.#take(error.message)) return;
    const record = capRecord(error.message, undefined, this.budget.maxRecordBytes);
    this.budget.spend(record.bytes + 64);
    this.#log.warning("plugin {plugin} wrote bad protocol output: {message}", {
      plugin: this.#plugin,
      code: error.code,
      message: record.message,
      count,
    });
  }

  /**
   * A protocol error the host stops the plugin for. Not budgeted: the message is the host's,
   * and there is one per process at most.
   */
  onProtocolFatal(message: string): void {
    const record = capRecord(message, undefined, this.budget.maxRecordBytes);
    this.#log.error("{message}", { plugin: this.#plugin, message: record.message });
  }

  /** A notification the host does not know. */
  onUnknownNotification(method: string): void {
    if (!this.#log.isEnabledFor("debug") || !this.#take(method)) return;
    const record = capRecord(method, undefined, 256 + 64 * 4);
    this.budget.spend(record.bytes + 64);
    this.#log.debug("plugin {plugin} sent an unknown notification {method}", {
      plugin: this.#plugin,
      method: record.message,
    });
  }

  #take(text: string): boolean {
    if (this.budget.take()) return true;
    this.budget.drop(text.length);
    return false;
  }
}

/** A `$/log` message as text: strings as they are, other JSON values as JSON while small. */
function messageText(message: unknown, maxBytes: number): string {
  if (typeof message === "string") return message;
  if (message === undefined || message === null) return "";
  if (typeof message !== "object") return String(message);
  const size = jsonLength(message, maxBytes);
  return size <= maxBytes ? JSON.stringify(message) : `[a message of ${size}+ bytes of JSON]`;
}
