import { type Command, Option } from "commander";
import { loadConfig } from "../config/mod.ts";
import { LOG_LEVELS } from "../config/schema.ts";
import { type LogEntry, type LogQuery, LogStore, type LogStoreStats } from "../logs/mod.ts";
import type { CliContext } from "./context.ts";
import { UsageError } from "./exit_codes.ts";
import { formatTable } from "./table.ts";

/** Options shared by `logs query` and `logs tail`. */
interface FilterOptions {
  db?: string;
  plugin?: string[];
  level?: string;
  since?: string;
  until?: string;
  grep?: string;
  category?: string;
  json?: boolean;
}

const TAIL_PAGE = 1_000;

const UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses a `--since`/`--until` value: a duration back from `now` (`90s`, `15m`, `2h`, `1d`,
 * `1w`, `500ms`, `1h30m`), `now`, or a date/time (`2025-01-31`, `2025-01-31T12:00:00Z`, ...).
 *
 * @returns milliseconds since the epoch
 * @throws {UsageError} for anything else
 */
export function parseTimeArg(text: string, now: number = Date.now(), option = "--since"): number {
  const t = text.trim();
  if (t === "now") return now;
  if (/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/.test(t)) {
    let ms = 0;
    for (const [, n, unit] of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)) {
      ms += Number(n) * UNITS[unit!]!;
    }
    return now - ms;
  }
  if (/^\d{4}-\d{2}-\d{2}/.test(t)) {
    const ms = Date.parse(t);
    if (Number.isFinite(ms)) return ms;
  }
  throw new UsageError(
    `${option} ${JSON.stringify(text)} is neither a duration (15m, 2h, 1d, 1h30m) nor a date ` +
      "(2025-01-31 or 2025-01-31T12:00:00Z)",
  );
}

function parseLimit(text: string): number {
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= 1 && n <= 100_000)) {
    throw new UsageError(`--limit must be a whole number from 1 to 100000, got ${text}`);
  }
  return n;
}

function parseInterval(text: string): number {
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= 10 && n <= 60_000)) {
    throw new UsageError(`--interval must be a number of ms from 10 to 60000, got ${text}`);
  }
  return n;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(",").map((s) => s.trim()).filter(Boolean)];
}

function toQuery(opts: FilterOptions, now: number): LogQuery {
  const level = opts.level?.toLowerCase();
  if (level !== undefined && ![...LOG_LEVELS, "warn"].includes(level)) {
    throw new UsageError(
      `--level ${JSON.stringify(opts.level)} is not a level; use one of ${LOG_LEVELS.join(", ")}`,
    );
  }
  const since = opts.since === undefined ? undefined : parseTimeArg(opts.since, now, "--since");
  const until = opts.until === undefined ? undefined : parseTimeArg(opts.until, now, "--until");
  if (since !== undefined && until !== undefined && since >= until) {
    throw new UsageError(`--since (${opts.since}) must be before --until (${opts.until})`);
  }
  return {
    ...(opts.plugin && opts.plugin.length > 0 ? { plugin: opts.plugin } : {}),
    ...(level === undefined ? {} : { minLevel: level as LogQuery["minLevel"] }),
    ...(since === undefined ? {} : { since }),
    ...(until === undefined ? {} : { until }),
    ...(opts.grep === undefined ? {} : { grep: opts.grep }),
    ...(opts.category === undefined ? {} : { category: opts.category }),
  };
}

async function dbPath(ctx: CliContext, opts: FilterOptions): Promise<string> {
  if (opts.db !== undefined) return opts.db;
  const globals = ctx.globals();
  const loaded = await loadConfig(globals.config, { optional: !globals.configExplicit });
  return loaded.config.logging.store.db_file;
}

function addFilters(cmd: Command): Command {
  return cmd
    .option("--plugin <name>", "only records of this plugin (repeat or comma-separate)", collect)
    .option("--level <level>", `minimum level: ${LOG_LEVELS.join(", ")}`)
    .option("--since <when>", "from this time: a duration back (15m, 2h, 1d) or a date/time")
    .option("--until <when>", "before this time: a duration back or a date/time")
    .option("--grep <text>", "message or fields contain this text (ASCII case-insensitive)")
    .option("--category <path>", "category and below, e.g. plugsconc.host")
    .option("--json", "one JSON object per record per line")
    .option("--db <file>", "log database (default: logging.store.db_file of --config)");
}

/**
 * `logs query`, `logs tail` and `logs stats`: read the SQLite log store, also while `run`
 * writes to it from another process.
 */
export function registerLogs(program: Command, ctx: CliContext): Command {
  const logs = program.command("logs").description("read the persistent log store");

  addFilters(
    logs
      .command("query")
      .description("print stored records (the newest --limit matches, oldest first)"),
  )
    .addOption(
      new Option("--limit <n>", "at most this many records").default(100).argParser(parseLimit),
    )
    .action(async (opts: FilterOptions & { limit: number }) => {
      const query = { ...toQuery(opts, Date.now()), limit: opts.limit };
      using store = LogStore.openSync(await dbPath(ctx, opts), { readOnly: true });
      const entries = store.query(query);
      const out = new Printer(ctx, opts.json ?? false);
      out.print(entries, true);
      if (!opts.json && entries.length === 0) ctx.io.err("no matching records\n");
    });

  addFilters(
    logs
      .command("tail")
      .description("print the last records, then follow new ones until Ctrl-C"),
  )
    .addOption(
      new Option("-n, --lines <n>", "records to print before following").default(10).argParser(
        (v) => v === "0" ? 0 : parseLimit(v),
      ),
    )
    .addOption(
      new Option("--interval <ms>", "how often to look for new records").default(250).argParser(
        parseInterval,
      ),
    )
    .action(async (opts: FilterOptions & { lines: number; interval: number }) => {
      const query = toQuery(opts, Date.now());
      const path = await dbPath(ctx, opts);
      using stop = stopSignal(ctx.io.signal);
      const signal = stop.signal;
      if (!exists(path)) {
        ctx.io.err(`waiting for ${path} to be created (the host creates it on \`run\`)...\n`);
        while (!exists(path) && !signal.aborted) await sleep(opts.interval, signal);
        if (signal.aborted) return;
      }
      using store = LogStore.openSync(path, { readOnly: true });
      const out = new Printer(ctx, opts.json ?? false);
      let after = store.lastSeq();
      if (opts.lines > 0) {
        const recent = store.query({ ...query, limit: opts.lines });
        out.print(recent, false);
        after = Math.max(after, recent.at(-1)?.seq ?? 0);
      }
      while (!signal.aborted) {
        // Read the top first: when the query returns less than a page, every match up to `top`
        // was in it, so records the filter rejected are skipped for good, and none is missed.
        const top = store.lastSeq();
        const batch = store.query({ ...query, afterSeq: after, limit: TAIL_PAGE });
        out.print(batch, false);
        const last = batch.at(-1)?.seq ?? after;
        if (batch.length === TAIL_PAGE) {
          after = last;
          continue;
        }
        after = Math.max(last, top);
        await sleep(opts.interval, signal);
      }
    });

  logs
    .command("stats")
    .description("rows, size, dropped records, oldest and newest record of the log store")
    .option("--json", "print JSON")
    .option("--db <file>", "log database (default: logging.store.db_file of --config)")
    .action(async (opts: { json?: boolean; db?: string }) => {
      using store = LogStore.openSync(await dbPath(ctx, opts), { readOnly: true });
      const stats = store.stats();
      if (opts.json) {
        ctx.io.out(JSON.stringify(statsJson(stats), null, 2) + "\n");
        return;
      }
      ctx.io.out(formatStats(stats, Date.now()));
    });
  return logs;
}

/** Stats as JSON with ISO times beside the epoch milliseconds. */
function statsJson(s: LogStoreStats): Record<string, unknown> {
  return {
    ...s,
    oldest: s.oldestTs === null ? null : new Date(s.oldestTs).toISOString(),
    newest: s.newestTs === null ? null : new Date(s.newestTs).toISOString(),
  };
}

function formatStats(s: LogStoreStats, now: number): string {
  const time = (ts: number | null) =>
    ts === null ? "-" : `${new Date(ts).toISOString()} (${formatAge(now - ts)} ago)`;
  const levels = Object.entries(s.levels).map(([k, v]) => `${k} ${v}`).join(", ") || "-";
  const rows: [string, string][] = [
    ["database", s.path],
    ["rows", String(s.rows)],
    ["size", `${formatBytes(s.sizeBytes)} (write-ahead log ${formatBytes(s.walBytes)})`],
    ["dropped", String(s.dropped)],
    ["oldest", time(s.oldestTs)],
    ["newest", time(s.newestTs)],
    ["seq", s.firstSeq === null ? "-" : `${s.firstSeq} .. ${s.lastSeq}`],
    ["levels", levels],
    ["schema", `version ${s.schemaVersion}`],
  ];
  return rows.map(([k, v]) => `${(k + ":").padEnd(10)}${v}`).join("\n") + "\n";
}

/** `1.5 MiB`, `312 B`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** `3d 4h`, `12m 5s`, `800ms`. */
export function formatAge(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.floor(ms / 1000);
  const parts: [number, string][] = [
    [Math.floor(s / 86_400), "d"],
    [Math.floor(s / 3600) % 24, "h"],
    [Math.floor(s / 60) % 60, "m"],
    [s % 60, "s"],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  return parts.slice(first, first + 2).filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join(" ");
}

const LEVEL_TAGS: Readonly<Record<string, string>> = {
  trace: "TRACE",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "FATAL",
};

const LEVEL_COLORS: Readonly<Record<string, string>> = {
  trace: "\x1b[2m",
  debug: "\x1b[2m",
  info: "\x1b[32m",
  warning: "\x1b[33m",
  error: "\x1b[31m",
  fatal: "\x1b[1;35m",
};

/** Writes records as JSON lines or as aligned (and, on a terminal, colored) text. */
class Printer {
  readonly #ctx: CliContext;
  readonly #json: boolean;
  readonly #color: boolean;
  #sourceWidth = 6;

  constructor(ctx: CliContext, json: boolean) {
    this.#ctx = ctx;
    this.#json = json;
    this.#color = ctx.io.isTerminal && Deno.env.get("NO_COLOR") === undefined;
  }

  /** Prints `entries`; with `header`, widths come from these entries and a header line leads. */
  print(entries: readonly LogEntry[], header: boolean): void {
    if (entries.length === 0) return;
    if (this.#json) {
      this.#ctx.io.out(entries.map((e) => JSON.stringify(entryJson(e))).join("\n") + "\n");
      return;
    }
    const rows = entries.map((e) => [
      new Date(e.ts).toISOString(),
      LEVEL_TAGS[e.level] ?? e.level,
      source(e),
      messageText(e),
    ]);
    this.#sourceWidth = Math.max(this.#sourceWidth, ...rows.map((r) => r[2]!.length));
    if (header && !this.#color) {
      this.#ctx.io.out(formatTable(["TIME", "LEVEL", "SOURCE", "MESSAGE"], rows));
      return;
    }
    const lines = rows.map(([time, level, src, msg], i) => {
      const lv = level!.padEnd(5);
      const s = src!.padEnd(this.#sourceWidth);
      if (!this.#color) return `${time}  ${lv}  ${s}  ${msg}`;
      const c = LEVEL_COLORS[entries[i]!.level] ?? "";
      return `\x1b[2m${time}\x1b[0m  ${c}${lv}\x1b[0m  \x1b[36m${s}\x1b[0m  ${msg}`;
    });
    this.#ctx.io.out(lines.join("\n") + "\n");
  }
}

function entryJson(e: LogEntry): Record<string, unknown> {
  return {
    seq: e.seq,
    time: new Date(e.ts).toISOString(),
    ts: e.ts,
    level: e.level,
    category: e.category,
    plugin: e.plugin,
    message: e.message,
    properties: e.properties,
  };
}

function source(e: LogEntry): string {
  if (e.category.startsWith("plugsconc.plugin.") && e.plugin !== null) return e.plugin;
  return e.category.startsWith("plugsconc.") ? e.category.slice("plugsconc.".length) : e.category;
}

/** The message on one line (newlines shown as `\n`), then the fields as compact JSON. */
function messageText(e: LogEntry): string {
  const msg = e.message.replace(/\r?\n/g, "\\n").replace(/\r/g, "\\r");
  const fields = Object.keys(e.properties).length === 0 ? "" : ` ${JSON.stringify(e.properties)}`;
  return msg + fields;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** Aborted by `parent`, SIGINT or SIGTERM; disposing removes the signal listeners. */
function stopSignal(parent?: AbortSignal): { signal: AbortSignal } & Disposable {
  const controller = new AbortController();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const stop = () => controller.abort();
  for (const s of signals) Deno.addSignalListener(s, stop);
  if (parent?.aborted) stop();
  else parent?.addEventListener("abort", stop, { once: true });
  return {
    signal: controller.signal,
    [Symbol.dispose]() {
      for (const s of signals) Deno.removeSignalListener(s, stop);
      parent?.removeEventListener("abort", stop);
    },
  };
}
