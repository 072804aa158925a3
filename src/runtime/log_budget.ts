import { getLogger, type Logger } from "@logtape/logtape";
import type { MetricsRegistry } from "../metrics/mod.ts";
import { RequestBudget, type RequestBudgetOptions } from "./request_budget.ts";

/** The `logging.plugin_budget` config section (and, partial, `plugins.<name>.log_budget`). */
export interface LogBudgetConfig {
  readonly records_per_s: number;
  readonly bytes_per_s: number;
  readonly max_record_bytes: number;
  readonly report_interval_ms: number;
  /** The plugin's request budget ({@link RequestBudget}); optional for older callers. */
  readonly request_bytes_per_s?: number;
}

/** Time and timers of a {@link LogBudget}; tests pass a fake one. */
export interface LogBudgetClock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Calls `fn` after `ms`; must not keep the process alive for it. */
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** Options for {@link LogBudget}. */
export interface LogBudgetOptions {
  /** Records per second, averaged. Default 500. */
  readonly recordsPerS?: number;
  /** Bytes per second (message plus serialised fields), averaged. Default 512 KiB. */
  readonly bytesPerS?: number;
  /** One record's size cap (see `capRecord`). Default 64 KiB. */
  readonly maxRecordBytes?: number;
  /** While records are dropped, the count is reported at most this often. Default 10,000 ms. */
  readonly reportIntervalMs?: number;
  /** A burst may spend this many seconds' worth of both rates at once. Default 2. */
  readonly burstSeconds?: number;
  /** Where the drop report goes. Default: `plugsconc.plugin.<name>`, like the plugin's records. */
  readonly logger?: Logger;
  /** Called for every dropped record (a metrics counter). Default: none. */
  readonly onDrop?: (records: number, bytes: number) => void;
  /** Default: `performance.now()` and unreferenced real timers. */
  readonly clock?: LogBudgetClock;
  /** The plugin's {@link RequestBudget} (it shares this clock). Default: its defaults. */
  readonly requests?: Omit<RequestBudgetOptions, "clock">;
}

/** Counters of a {@link LogBudget}, since it was made. */
export interface LogBudgetStats {
  /** Records let through. */
  readonly passed: number;
  /** Their bytes (after the size cap). */
  readonly passedBytes: number;
  /** Records dropped over the budget. */
  readonly dropped: number;
  /** Their bytes, as far as they were measured before dropping (a lower bound). */
  readonly droppedBytes: number;
  /** Drop reports logged. */
  readonly reports: number;
}

const REAL_CLOCK: LogBudgetClock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const id = setTimeout(fn, ms);
    Deno.unrefTimer(id);
    return id;
  },
  clearTimeout: (id) => clearTimeout(id as number),
};

function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) {
    throw new RangeError(`${name} must be a number > 0, got ${value}`);
  }
  return value;
}

/**
 * How much one plugin may log: every record a plugin causes (`$/log`, stderr lines, protocol
 * warnings, unknown notifications) passes {@link LogBudget.take} before it reaches LogTape. Two
 * token buckets, records/s and bytes/s, each holding `burstSeconds` worth; one budget is shared
 * by all instances and restarts of the plugin. A record is let through while a record token is
 * left and the byte bucket is not in debt; its size (known only once it is capped, which is
 * bounded work) is then {@link LogBudget.spend spent}, possibly into debt, so that a dropped
 * record costs nothing but the check. Drops are counted and reported as one warning record per
 * `reportIntervalMs` at most: `plugin X: N log records (M bytes) over its log budget were
 * dropped in the last 10 s`. That report is the host's, not the plugin's: it is not budgeted.
 *
 * @example
 * ```ts
 * const budget = new LogBudget("cat", { recordsPerS: 100 });
 * if (budget.take()) {
 *   const record = capRecord(message, fields, budget.maxRecordBytes);
 *   budget.spend(record.bytes);
 *   log.info("{message}", { ...record.fields, message: record.message });
 * } else budget.drop(message.length);
 * ```
 */
export class LogBudget implements Disposable {
  /** The plugin it limits. */
  readonly plugin: string;
  /** One record's size cap. */
  readonly maxRecordBytes: number;
  /** What the plugin's own requests to host services may cost to read (the log gate's). */
  readonly requests: RequestBudget;
  readonly #recordsPerMs: number;
  readonly #bytesPerMs: number;
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  readonly #interval: number;
  readonly #clock: LogBudgetClock;
  readonly #log: Logger;
  readonly #onDrop: ((records: number, bytes: number) => void) | undefined;
  #records: number;
  #bytes: number;
  #at: number;
  #passed = 0;
  #passedBytes = 0;
  #dropped = 0;
  #droppedBytes = 0;
  #reports = 0;
  /** Drops not reported yet, and when the first of them happened. */
  #pending = 0;
  #pendingBytes = 0;
  #since = 0;
  #timer: unknown;

  /**
   * @param plugin the plugin's name (in the report)
   * @param options rates, cap, report interval (defaults: the config's)
   * @throws {RangeError} for a rate, cap or interval that is not a positive number
   */
  constructor(plugin: string, options: LogBudgetOptions = {}) {
    this.plugin = plugin;
    const recordsPerS = positive("recordsPerS", options.recordsPerS ?? 500);
    const bytesPerS = positive("bytesPerS", options.bytesPerS ?? 512 * 1024);
    const burst = positive("burstSeconds", options.burstSeconds ?? 2);
    this.maxRecordBytes = positive("maxRecordBytes", options.maxRecordBytes ?? 64 * 1024);
    this.#interval = positive("reportIntervalMs", options.reportIntervalMs ?? 10_000);
    this.#recordsPerMs = recordsPerS / 1000;
    this.#bytesPerMs = bytesPerS / 1000;
    this.#maxRecords = Math.max(1, recordsPerS * burst);
    this.#maxBytes = Math.max(this.maxRecordBytes, bytesPerS * burst);
    this.#records = this.#maxRecords;
    this.#bytes = this.#maxBytes;
    this.#clock = options.clock ?? REAL_CLOCK;
    this.#at = this.#clock.now();
    this.requests = new RequestBudget({ ...options.requests, clock: this.#clock });
    this.#log = options.logger ?? getLogger(["plugsconc", "plugin", plugin]);
    this.#onDrop = options.onDrop;
  }

  /**
   * A budget from the config: `logging.plugin_budget`, with the fields of the plugin's
   * `plugins.<name>.log_budget` over it.
   */
  static fromConfig(
    plugin: string,
    base: LogBudgetConfig,
    override?: Partial<LogBudgetConfig>,
    options: Pick<LogBudgetOptions, "logger" | "onDrop" | "clock"> = {},
  ): LogBudget {
    const c = { ...base, ...override };
    return new LogBudget(plugin, {
      ...options,
      recordsPerS: c.records_per_s,
      bytesPerS: c.bytes_per_s,
      maxRecordBytes: c.max_record_bytes,
      reportIntervalMs: c.report_interval_ms,
      ...(c.request_bytes_per_s === undefined
        ? {}
        : { requests: { bytesPerS: c.request_bytes_per_s } }),
    });
  }

  /**
   * Whether one more record may pass now; takes its record token if so. Cheap: call it before
   * any work on the record, and {@link LogBudget.drop} it when this says no.
   */
  take(): boolean {
    if (!this.ready()) return false;
    this.#records -= 1;
    this.#passed++;
    return true;
  }

  /** The bytes the byte bucket holds now (refilled first; negative while in debt). */
  availableBytes(): number {
    this.ready();
    return this.#bytes;
  }

  /** Whether {@link LogBudget.take} would let a record through now (takes nothing). */
  ready(): boolean {
    const now = this.#clock.now();
    const elapsed = now - this.#at;
    if (elapsed > 0) {
      this.#at = now;
      this.#records = Math.min(this.#maxRecords, this.#records + elapsed * this.#recordsPerMs);
      this.#bytes = Math.min(this.#maxBytes, this.#bytes + elapsed * this.#bytesPerMs);
    }
    return this.#records >= 1 && this.#bytes > 0;
  }

  /**
   * Spends the size of a record {@link LogBudget.take} let through: what the plugin sent, so
   * that a record cut down to its cap still costs what it cost the host to read. The bucket may
   * go into debt (at most a minute's worth); nothing passes until it is paid back.
   */
  spend(bytes: number): void {
    this.#bytes = Math.max(-this.#bytesPerMs * 60_000, this.#bytes - bytes);
    this.#passedBytes += bytes;
  }

  /** Counts a record {@link LogBudget.take} refused; `bytes` is what is known of its size. */
  drop(bytes: number): void {
    this.#dropped++;
    this.#droppedBytes += bytes;
    this.#pendingBytes += bytes;
    if (this.#pending++ === 0) {
      this.#since = this.#clock.now();
      this.#timer = this.#clock.setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, this.#interval);
    }
    this.#onDrop?.(1, bytes);
  }

  /** Counters since the budget was made. */
  get stats(): LogBudgetStats {
    return {
      passed: this.#passed,
      passedBytes: this.#passedBytes,
      dropped: this.#dropped,
      droppedBytes: this.#droppedBytes,
      reports: this.#reports,
    };
  }

  /** Records dropped since the budget was made. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Logs the drops not reported yet now (the timer does this one interval after the first of
   * them); the budget stays usable. A plugin process calls it when it exits.
   */
  flush(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending === 0) return;
    const dropped = this.#pending;
    const droppedBytes = Math.round(this.#pendingBytes);
    const seconds = Math.round((this.#clock.now() - this.#since) / 100) / 10;
    this.#pending = 0;
    this.#pendingBytes = 0;
    this.#reports++;
    this.#log.warning(
      "plugin {plugin}: {dropped} log records ({droppedBytes} bytes) over its log budget were " +
        "dropped in the last {seconds} s",
      {
        plugin: this.plugin,
        dropped,
        droppedBytes,
        seconds,
        totalDropped: this.#dropped,
        recordsPerS: this.#recordsPerMs * 1000,
        bytesPerS: this.#bytesPerMs * 1000,
        hint:
          `if this is expected, raise logging.plugin_budget or plugins.${this.plugin}.log_budget`,
      },
    );
  }

  /** Same as {@link LogBudget.flush}. */
  [Symbol.dispose](): void {
    this.flush();
  }
}

/** What {@link pluginLogBudget} reads of the host config. */
export interface LogBudgetSettings {
  readonly logging: { readonly plugin_budget: LogBudgetConfig };
  readonly plugins: Readonly<Record<string, { readonly log_budget?: Partial<LogBudgetConfig> }>>;
}

/**
 * The budget the host gives one plugin (for all its instances and restarts): the config's
 * `logging.plugin_budget` with `plugins.<name>.log_budget` over it, its drops counted in
 * `plugsconc_plugin_log_dropped_total{plugin}` of `metrics`.
 */
export function pluginLogBudget(
  plugin: string,
  config: LogBudgetSettings,
  metrics?: MetricsRegistry,
): LogBudget {
  const dropped = metrics?.counter(
    "plugsconc_plugin_log_dropped_total",
    "Log records of a plugin dropped over its log budget (logging.plugin_budget).",
    ["plugin"],
  ).labels(plugin);
  return LogBudget.fromConfig(
    plugin,
    config.logging.plugin_budget,
    config.plugins[plugin]?.log_budget,
    dropped === undefined ? {} : { onDrop: (n) => dropped.inc(n) },
  );
}
