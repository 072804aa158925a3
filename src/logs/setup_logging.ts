import {
  configure,
  getAnsiColorFormatter,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
  reset,
  type Sink,
  type TextFormatter,
  withFilter,
} from "@logtape/logtape";
import { getRotatingFileSink, getTimeRotatingFileSink } from "@logtape/file";
import { AsyncLocalStorage } from "node:async_hooks";
import { basename, dirname } from "node:path";
import type { Config } from "../config/mod.ts";

/** The `logging` section of the config. */
export type LoggingConfig = Config["logging"];

/** Options for {@link setupLogging}. */
export interface SetupLoggingOptions {
  /**
   * More sinks, by id (the seam for the SQLite log store). Each receives every record that
   * passes the level filter. Disposed with the returned handle if they are disposable.
   */
  extraSinks?: Record<string, Sink>;
  /** Where console records go. Default: standard error. */
  write?: (text: string) => void;
  /** Whether the console is a terminal (colors, human format). Default: `Deno.stderr.isTerminal()`. */
  isTerminal?: boolean;
  /**
   * Lowest level the console shows, above `logging.level` (a short command keeps stdout clean
   * while the store still gets every record). Default: `logging.level`.
   */
  consoleLevel?: LogLevel;
}

const encoder = new TextEncoder();

function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stderr.writeSync(bytes.subarray(off));
}

/** Picks the console formatter: colored text on a TTY (unless NO_COLOR), JSON lines otherwise. */
export function consoleFormatter(logging: LoggingConfig, isTerminal: boolean): TextFormatter {
  const json = logging.format === "json" || (logging.format === "auto" && !isTerminal);
  if (json) return getJsonLinesFormatter({ properties: "nest:properties" });
  const sourceLocation = logging.include_location;
  const noColor = Deno.env.get("NO_COLOR") !== undefined || !isTerminal;
  return noColor
    ? getTextFormatter({ timestamp: "date-time-tz", sourceLocation })
    : getAnsiColorFormatter({ timestamp: "time", sourceLocation });
}

/** A sink that formats each record and writes it synchronously (keeps order with stdout). */
export function getWriterSink(formatter: TextFormatter, write: (text: string) => void): Sink {
  return (record: LogRecord) => write(formatter(record));
}

/**
 * Configures LogTape for the whole process from the `logging` section: console sink,
 * optional rotating file sink, levels, source locations, plus any `extraSinks`.
 * Only entry points (the CLI, `PluginHost` when asked) call this; library code only calls
 * `getLogger(["plugsconc", component])`.
 *
 * @returns a handle whose disposal flushes and closes every sink and resets LogTape
 */
export async function setupLogging(
  logging: LoggingConfig,
  options: SetupLoggingOptions = {},
): Promise<AsyncDisposable> {
  const isTerminal = options.isTerminal ?? Deno.stderr.isTerminal();
  const consoleSink = getWriterSink(
    consoleFormatter(logging, isTerminal),
    options.write ?? writeStderr,
  );
  const sinks: Record<string, Sink> = {
    console: options.consoleLevel ? withFilter(consoleSink, options.consoleLevel) : consoleSink,
    ...options.extraSinks,
  };
  if (logging.file.enabled) {
    await Deno.mkdir(dirname(logging.file.path), { recursive: true });
    const formatter = logging.file.format === "json"
      ? getJsonLinesFormatter({ properties: "nest:properties" })
      : getTextFormatter({ timestamp: "date-time-tz", sourceLocation: logging.include_location });
    sinks.file = logging.file.rotate === "size"
      ? getRotatingFileSink(logging.file.path, {
        formatter,
        maxSize: Math.round(logging.file.max_size_mb * 1024 * 1024),
        maxFiles: logging.file.max_backups,
        flushInterval: 1000,
      })
      : getTimeRotatingFileSink({
        directory: dirname(logging.file.path),
        interval: logging.file.rotate,
        filename: timeFilename(basename(logging.file.path), logging.file.rotate),
        formatter,
        flushInterval: 1000,
        ...(logging.file.max_age_days > 0
          ? { maxAgeMs: logging.file.max_age_days * 86_400_000 }
          : {}),
      });
  }
  const sinkIds = Object.keys(sinks);
  await configure({
    reset: true,
    // Implicit contexts: `withContext({ requestId }, fn)` adds its fields to every record
    // logged inside `fn` (the HTTP gateway's request ids).
    contextLocalStorage: new AsyncLocalStorage(),
    sinks,
    loggers: [
      {
        category: ["plugsconc"],
        sinks: sinkIds,
        lowestLevel: logging.level,
        captureSourceLocation: logging.include_location,
      },
      ...Object.entries(logging.categories).map(([category, level]) => ({
        category: category.split("."),
        lowestLevel: level,
      })),
      { category: ["logtape", "meta"], sinks: ["console"], lowestLevel: "warning" as const },
    ],
  });
  let disposed = false;
  return {
    async [Symbol.asyncDispose]() {
      if (disposed) return;
      disposed = true;
      await reset();
    },
  };
}

function timeFilename(base: string, interval: "daily" | "hourly"): (date: Date) => string {
  const stem = base.replace(/\.log$/, "");
  return (date) => {
    const iso = date.toISOString();
    const day = iso.slice(0, 10);
    return interval === "daily" ? `${stem}-${day}.log` : `${stem}-${day}-${iso.slice(11, 13)}.log`;
  };
}
