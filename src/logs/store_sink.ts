import { getLogger, type Logger, type LogRecord, type Sink } from "@logtape/logtape";
import type { Config } from "../config/mod.ts";
import { encodeRow, type LogStore, LogStoreError, type LogStoreOptions } from "./log_store.ts";
import { levelNumber, propertiesJson, recordPlugin, renderMessage } from "./record_text.ts";
import { estimateRecordBytes } from "./record_size.ts";
import { sizeCapPlan } from "./retention.ts";
import { ReportThrottle } from "./_report_throttle.ts";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./_store_protocol.ts";

/** Options for {@link getLogStoreSink}; {@link logStoreSinkOptions} derives them from the config. */
export interface LogStoreSinkOptions {
  /** Records the in-memory queue holds; beyond it records are dropped and counted. Default 10,000. */
  queueSize?: number;
  /** Records per write transaction. Default 1,000. */
  batchSize?: number;
  /** A partial batch is written after at most this long. Default 200 ms. */
  flushIntervalMs?: number;
  /**
   * Bound of the queue's memory (see `estimateRecordBytes`: every string and key of a record's
   * properties, nested ones too); beyond it records are dropped like on a full queue. Default
   * 64 MiB.
   */
  maxQueueBytes?: number;
  /**
   * Cap of the database file plus its WAL (0: none): after every batch the writer deletes the
   * oldest records when it nears the cap (see `sizeCapPlan`), and the deletion is logged.
   * Default 0; `logStoreSinkOptions` passes `logging.store.max_bytes` (1 GiB by default).
   */
  maxBytes?: number;
  /** Delete records older than this many days (0: keep). Default 0. */
  retentionDays?: number;
  /** Keep at most this many records (0: no limit). Default 0. */
  maxRows?: number;
  /** How often the writer enforces retention (in batches of 2,000 rows). Default 60,000 ms. */
  retentionIntervalMs?: number;
  /**
   * How long one write attempt waits for another connection's lock before it backs off and
   * retries. Default 200 ms.
   */
  busyTimeoutMs?: number;
  /** Backoff between failed write attempts: starts here, doubles. Default 50 ms. */
  minRetryDelayMs?: number;
  /** ... up to this. Default 5,000 ms. */
  maxRetryDelayMs?: number;
  /** While drops go on, report them at most this often. Default 10,000 ms. */
  dropReportIntervalMs?: number;
  /** How long disposal waits for queued records to be written. Default 10,000 ms. */
  disposeTimeoutMs?: number;
  /** Where the sink reports drops, degradation and recovery. Default `plugsconc.logs.store`. */
  logger?: Logger;
}

/** Counters of a {@link LogStoreSink}. */
export interface LogStoreSinkStats {
  /** Records waiting in memory. */
  readonly queued: number;
  /** Records sent to the writer and not yet committed. */
  readonly inFlight: number;
  /** Records the sink accepted (queued) since it was made. */
  readonly accepted: number;
  /** Records committed to the database. */
  readonly written: number;
  /** Records dropped because the queue was full. */
  readonly dropped: number;
  /** Records in batches SQLite refused for good (not retried). */
  readonly lost: number;
  /** Sequence number of the last committed record (0 before the first). */
  readonly lastSeq: number;
  /** Records deleted by retention and by the byte cap. */
  readonly pruned: number;
  /** Of those, records deleted because the database reached `maxBytes`. */
  readonly capped: number;
  /** Why writes currently fail (they are being retried), or `null`. */
  readonly degraded:
    | { readonly code: string; readonly message: string; readonly since: number }
    | null;
}

/** The sink: call it with records; dispose it to flush and close. */
export interface LogStoreSink extends Sink, AsyncDisposable {
  /** Queues one record; never blocks, never throws. */
  (record: LogRecord): void;
  /** The store it writes to. */
  readonly store: LogStore;
  /** Current counters. */
  readonly stats: LogStoreSinkStats;
  /** Resolves when every record accepted before the call is committed (or lost). */
  flush(signal?: AbortSignal): Promise<void>;
  /** Runs retention now; resolves with the number of records deleted. */
  prune(): Promise<number>;
  /**
   * Writes everything queued, closes the writer; idempotent.
   *
   * @throws {LogStoreError} `LOG_STORE_FLUSH_TIMEOUT` when records were still unwritten after
   *   `disposeTimeoutMs` (the database stayed locked or the disk full)
   */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Batches sent to the worker and not yet answered: one being written, one ready behind it. */
const MAX_IN_FLIGHT = 2;
/** A batch stops growing at this many (estimated) bytes. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;

/** The `logging.store` section of the config. */
export type StoreConfig = Config["logging"]["store"];

/** Store options from the `logging.store` config section. */
export function logStoreOptions(config: StoreConfig): LogStoreOptions {
  return { synchronous: config.synchronous };
}

/** Sink options from the `logging.store` config section. */
export function logStoreSinkOptions(config: StoreConfig): LogStoreSinkOptions {
  return {
    queueSize: config.queue_size,
    batchSize: config.batch_size,
    flushIntervalMs: config.flush_interval_ms,
    retentionDays: config.retention_days,
    maxRows: config.max_rows,
    retentionIntervalMs: config.retention_interval_ms,
    busyTimeoutMs: config.busy_timeout_ms,
    maxBytes: config.max_bytes,
  };
}

function positiveInt(name: string, value: number): number {
  if (!(Number.isInteger(value) && value > 0)) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!(Number.isFinite(value) && value >= 0)) {
    throw new RangeError(`${name} must be a number >= 0, got ${value}`);
  }
  return value;
}

/**
 * A LogTape sink that persists records to `store` without ever making the logging call wait
 * on disk. The call only puts the record in a bounded ring buffer (O(1), no allocation); a
 * timer turns queued records into rows in batches and hands them to a Web Worker that owns its
 * own SQLite connection and writes each batch in one transaction. When the queue is full,
 * records are dropped and counted, and the count is logged once the pressure passes (or every
 * `dropReportIntervalMs` while it lasts). When the database is locked or the disk is full, the
 * worker keeps the batch and retries with backoff; the host keeps serving, the queue fills,
 * drops are counted, and writing resumes when the condition clears. With `maxBytes`, the writer
 * keeps the database and its WAL under that cap after every batch, deleting the oldest records
 * (reported like drops). Disposal writes everything queued, then closes the worker's connection.
 *
 * @example
 * ```ts
 * await using store = await LogStore.open(config.logging.store.db_file);
 * await using sink = getLogStoreSink(store, logStoreSinkOptions(config.logging.store));
 * await using _logging = await setupLogging(config.logging, { extraSinks: { store: sink } });
 * ```
 */
export function getLogStoreSink(store: LogStore, options: LogStoreSinkOptions = {}): LogStoreSink {
  const capacity = positiveInt("queueSize", options.queueSize ?? 10_000);
  const batchSize = positiveInt("batchSize", options.batchSize ?? 1_000);
  const flushIntervalMs = positiveInt("flushIntervalMs", options.flushIntervalMs ?? 200);
  const maxBytes = positiveInt("maxQueueBytes", options.maxQueueBytes ?? 64 * 1024 * 1024);
  const dropReportIntervalMs = nonNegative(
    "dropReportIntervalMs",
    options.dropReportIntervalMs ?? 10_000,
  );
  const disposeTimeoutMs = nonNegative("disposeTimeoutMs", options.disposeTimeoutMs ?? 10_000);
  const maxStoreBytes = nonNegative("maxBytes", options.maxBytes ?? 0);
  const maxBatchBytes = maxStoreBytes > 0
    ? sizeCapPlan(Math.ceil(maxStoreBytes)).batchBytes
    : MAX_BATCH_BYTES;
  const init: WorkerInit = {
    t: "init",
    path: store.path,
    store: {
      ...store.options,
      create: true,
      busyTimeoutMs: nonNegative("busyTimeoutMs", options.busyTimeoutMs ?? 200),
    },
    retention: {
      retentionDays: nonNegative("retentionDays", options.retentionDays ?? 0),
      maxRows: nonNegative("maxRows", options.maxRows ?? 0),
      intervalMs: nonNegative("retentionIntervalMs", options.retentionIntervalMs ?? 60_000),
      batchSize: 2_000,
      maxBytes: Math.ceil(maxStoreBytes),
    },
    minRetryDelayMs: positiveInt("minRetryDelayMs", options.minRetryDelayMs ?? 50),
    maxRetryDelayMs: positiveInt("maxRetryDelayMs", options.maxRetryDelayMs ?? 5_000),
  };
  const log = options.logger ?? getLogger(["plugsconc", "logs", "store"]);

  // ---- the queue: a ring buffer of record references (the call path touches only this) ----
  const ring: (LogRecord | undefined)[] = new Array(capacity);
  const sizes = new Int32Array(capacity);
  let head = 0;
  let tail = 0;
  let size = 0;
  let bytes = 0;
  let accepted = 0;
  let dropped = 0;
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timerIsFlush = false;
  // Drop reporting.
  let dropsUnreported = 0;
  let dropsUnpersisted = 0;
  let dropsSince = 0;
  let lastDropReport = 0;
  let dropTimer: ReturnType<typeof setTimeout> | undefined;
  // Writer state.
  let inFlight = 0;
  let inFlightRecords = 0;
  const batches = new Map<number, number>(); // batch id -> records
  let nextId = 0;
  let written = 0;
  let lost = 0;
  let unencodable = 0;
  let lastSeq = 0;
  let pruned = 0;
  let capped = 0;
  let degraded: { code: string; message: string; since: number } | null = null;
  const flushWaiters: { target: number; resolve: () => void }[] = [];
  const drainWaiters: (() => void)[] = [];
  const pruneWaiters: ((n: number) => void)[] = [];
  let closedReply: (() => void) | undefined;
  let disposing: Promise<void> | undefined;
  /**
   * Refused batches: reported summed, at most once per `dropReportIntervalMs`. The report is a
   * record of this sink too; were it refused as well (a database the writer cannot use for
   * good), reporting each refusal at once would feed itself without end.
   */
  const lostReports = new ReportThrottle<{ code: string; message: string }>(
    dropReportIntervalMs,
    (count, last) =>
      log.error("log store refused {count} records ({code}): {message}", {
        count,
        code: last.code,
        message: last.message,
        total: lost,
        path: store.path,
      }),
  );
  /** Deletions by the byte cap, reported likewise. */
  const capReports = new ReportThrottle<number>(
    dropReportIntervalMs,
    (count, fileBytes) =>
      log.warning(
        "log store reached logging.store.max_bytes ({maxBytes} bytes): deleted the {deleted} " +
          "oldest records ({total} in all)",
        { maxBytes: maxStoreBytes, deleted: count, total: capped, fileBytes, path: store.path },
      ),
  );

  const sink = ((record: LogRecord): void => {
    if (closed) return;
    if (size >= capacity || bytes >= maxBytes) {
      dropped++;
      dropsUnpersisted++;
      if (dropsUnreported++ === 0) onFirstDrop();
      return;
    }
    const est = estimateRecordBytes(record);
    ring[tail] = record;
    sizes[tail] = est;
    if (++tail === capacity) tail = 0;
    size++;
    bytes += est;
    accepted++;
    if (timer === undefined) {
      if (inFlight < MAX_IN_FLIGHT) schedule(size >= batchSize ? 0 : flushIntervalMs);
    } else if (size === batchSize && !timerIsFlush && inFlight < MAX_IN_FLIGHT) {
      clearTimeout(timer);
      schedule(0);
    }
  }) as LogStoreSink;

  function schedule(ms: number): void {
    timerIsFlush = ms === 0;
    timer = setTimeout(onTimer, ms);
  }

  function onTimer(): void {
    timer = undefined;
    pump(true);
  }

  /** Sends batches while the writer has room: full ones, or anything when `force`. */
  function pump(force: boolean): void {
    while (inFlight < MAX_IN_FLIGHT && (size >= batchSize || (force && size > 0))) sendBatch();
    if (force && size === 0 && inFlight === 0 && dropsUnpersisted > 0 && !closedWorker) {
      sendBatch(); // an empty batch that only persists the drop count
    }
    if (timer === undefined && size > 0 && inFlight < MAX_IN_FLIGHT) {
      schedule(size >= batchSize || wantsFlush() ? 0 : flushIntervalMs);
    }
  }

  function wantsFlush(): boolean {
    return flushWaiters.length > 0 || drainWaiters.length > 0;
  }

  function sendBatch(): void {
    const n = Math.min(size, batchSize);
    let rows = "";
    let used = 0;
    let count = 0;
    while (count < n && (count === 0 || used < maxBatchBytes)) {
      const record = ring[head]!;
      used += sizes[head]!;
      ring[head] = undefined;
      if (++head === capacity) head = 0;
      count++;
      try {
        const plugin = recordPlugin(record);
        rows += encodeRow(
          record.timestamp,
          levelNumber(record.level),
          categoryText(record.category),
          plugin,
          renderMessage(record),
          propertiesJson(record, plugin),
        );
      } catch {
        // A property getter or message template that throws: this timer must not.
        unencodable++;
      }
    }
    size -= count;
    bytes -= used;
    lost += unencodable;
    count -= unencodable;
    unencodable = 0;
    const id = ++nextId;
    batches.set(id, count);
    inFlight++;
    inFlightRecords += count;
    const message: WorkerRequest = { t: "rows", id, rows, dropped: dropsUnpersisted };
    dropsUnpersisted = 0;
    worker.postMessage(message);
  }

  // ---- the writer ----
  let worker: Worker;
  let closedWorker = false;
  startWorker();

  function startWorker(): void {
    worker = new Worker(new URL("./_store_worker.ts", import.meta.url), { type: "module" });
    worker.onmessage = (e: MessageEvent<WorkerReply>) => onReply(e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      onWorkerCrash(e.message);
    };
    worker.postMessage(init);
  }

  function onWorkerCrash(reason: string): void {
    // A bug in the writer: what it held is lost; start a fresh one so logging goes on.
    worker.terminate();
    lost += inFlightRecords;
    batches.clear();
    inFlight = 0;
    inFlightRecords = 0;
    log.error("log store writer failed ({reason}); restarting it", { reason, path: store.path });
    if (closedWorker) {
      closedReply?.();
      return;
    }
    startWorker();
    settle();
  }

  function finishBatch(id: number): number {
    const count = batches.get(id) ?? 0;
    batches.delete(id);
    inFlight--;
    inFlightRecords -= count;
    return count;
  }

  function onReply(msg: WorkerReply): void {
    switch (msg.t) {
      case "ack":
        finishBatch(msg.id);
        written += msg.count;
        if (msg.lastSeq > 0) lastSeq = msg.lastSeq;
        settle();
        return;
      case "lost": {
        const count = finishBatch(msg.id);
        lost += count;
        lostReports.note(count, { code: msg.code, message: msg.message });
        settle();
        return;
      }
      case "degraded":
        degraded = { code: msg.code, message: msg.message, since: Date.now() };
        log.warning(
          "log store cannot write ({code}): {message} Holding up to {queueSize} records in " +
            "memory (more are dropped and counted); the host keeps serving.",
          { code: msg.code, message: msg.message, queueSize: capacity, path: store.path },
        );
        return;
      case "recovered":
        degraded = null;
        log.info("log store writes again after {ms} ms", { ms: msg.afterMs, path: store.path });
        return;
      case "pruned":
        pruned += msg.deleted;
        if (msg.code !== undefined) {
          log.warning("log store retention stopped early ({code}): {message}", {
            code: msg.code,
            message: msg.message,
            path: store.path,
          });
        }
        pruneWaiters.shift()?.(msg.deleted);
        return;
      case "capped":
        pruned += msg.deleted;
        capped += msg.deleted;
        if (msg.deleted > 0) capReports.note(msg.deleted, msg.fileBytes);
        if (msg.code !== undefined) {
          log.warning("log store size cap failed ({code}): {message}", {
            code: msg.code,
            message: msg.message,
            path: store.path,
          });
        }
        return;
      case "closed":
        closedReply?.();
        return;
    }
  }

  /** After the writer answered: wake waiters, send more, report drops once pressure passed. */
  function settle(): void {
    const done = written + lost;
    while (flushWaiters.length > 0 && done >= flushWaiters[0]!.target) {
      flushWaiters.shift()!.resolve();
    }
    if (size === 0 && inFlight === 0 && dropsUnpersisted === 0) {
      for (const resolve of drainWaiters.splice(0)) resolve();
    }
    pump(wantsFlush());
    if (dropsUnreported > 0 && size <= capacity / 2) reportDrops();
  }

  function onFirstDrop(): void {
    dropsSince = Date.now();
    if (dropTimer === undefined && dropReportIntervalMs > 0) {
      const wait = Math.max(0, lastDropReport + dropReportIntervalMs - dropsSince);
      dropTimer = setTimeout(() => {
        dropTimer = undefined;
        if (dropsUnreported > 0) reportDrops();
      }, Math.max(wait, Math.min(1_000, dropReportIntervalMs)));
    }
  }

  function reportDrops(): void {
    if (dropTimer !== undefined) {
      clearTimeout(dropTimer);
      dropTimer = undefined;
    }
    const count = dropsUnreported;
    if (count === 0) return;
    dropsUnreported = 0;
    lastDropReport = Date.now();
    const pressure = size > capacity / 2;
    log.warning(
      "log store queue was full: dropped {dropped} records in {seconds} s " +
        "(queue_size {queueSize}; {total} dropped in all)",
      {
        dropped: count,
        seconds: Math.max(0, Math.round((lastDropReport - dropsSince) / 100) / 10),
        queueSize: capacity,
        total: dropped,
        ongoing: pressure,
        path: store.path,
      },
    );
    if (pressure) onFirstDrop(); // still full: the next report comes by timer
  }

  function flush(signal?: AbortSignal): Promise<void> {
    const target = accepted;
    if (written + lost >= target) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = { target, resolve: () => done(resolve) };
      const onAbort = () => {
        const i = flushWaiters.indexOf(waiter);
        if (i >= 0) flushWaiters.splice(i, 1);
        done(() => reject(signal!.reason));
      };
      const done = (then: () => void) => {
        signal?.removeEventListener("abort", onAbort);
        then();
      };
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      flushWaiters.push(waiter);
      flushWaiters.sort((a, b) => a.target - b.target);
      pump(true);
    });
  }

  async function dispose(): Promise<void> {
    // Reported before closing, so that the last reports are stored too.
    if (dropsUnreported > 0) reportDrops();
    lostReports.flush();
    capReports.flush();
    closed = true;
    if (dropTimer !== undefined) clearTimeout(dropTimer);
    dropTimer = undefined;
    const drained = new Promise<void>((resolve) => {
      if (size === 0 && inFlight === 0 && dropsUnpersisted === 0) resolve();
      else drainWaiters.push(resolve);
      pump(true);
    });
    const ok = await race(drained, disposeTimeoutMs);
    // A batch refused during the drain: report it now (to the console; the store is closing)
    // rather than leave a timer behind.
    lostReports.flush();
    capReports.flush();
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    closedWorker = true;
    if (ok) {
      const closedAck = new Promise<void>((resolve) => (closedReply = resolve));
      worker.postMessage({ t: "close" } satisfies WorkerRequest);
      await race(closedAck, Math.max(1_000, disposeTimeoutMs));
    }
    worker.terminate();
    for (const resolve of pruneWaiters.splice(0)) resolve(0);
    const unwritten = size + inFlightRecords;
    lost += unwritten;
    for (const w of flushWaiters.splice(0)) w.resolve();
    ring.fill(undefined);
    size = 0;
    if (!ok) {
      throw new LogStoreError(
        "LOG_STORE_FLUSH_TIMEOUT",
        `${unwritten} log records were not written to ${store.path} within ${disposeTimeoutMs} ms ` +
          `of shutdown${degraded ? `: ${degraded.message}` : ""}`,
        { path: store.path, details: { unwritten, degraded: degraded?.code ?? null } },
      );
    }
  }

  Object.defineProperties(sink, {
    store: { value: store, enumerable: true },
    stats: {
      enumerable: true,
      get: (): LogStoreSinkStats => ({
        queued: size,
        inFlight: inFlightRecords,
        accepted,
        written,
        dropped,
        lost,
        lastSeq,
        pruned,
        capped,
        degraded,
      }),
    },
    flush: { value: flush },
    prune: {
      value: (): Promise<number> => {
        if (closedWorker) return Promise.resolve(0);
        return new Promise<number>((resolve) => {
          pruneWaiters.push(resolve);
          worker.postMessage({ t: "prune" } satisfies WorkerRequest);
        });
      },
    },
    [Symbol.asyncDispose]: {
      value: (): Promise<void> => (disposing ??= dispose()),
    },
  });
  return sink;
}

const categoryTexts = new WeakMap<readonly string[], string>();

/** A category path as dotted text; a logger passes the same array every time, so remember it. */
function categoryText(category: readonly string[]): string {
  let text = categoryTexts.get(category);
  if (text === undefined) {
    text = category.join(".");
    categoryTexts.set(category, text);
  }
  return text;
}

/** Resolves `true` when `promise` settles within `ms`, `false` otherwise. */
async function race(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}
