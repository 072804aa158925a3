import type { LogRecord, Sink } from "@logtape/logtape";
import type { LogStore } from "./log_store.ts";
import { LogStoreError } from "./log_store_error.ts";
import {
  categoryText,
  levelNumber,
  propertiesJson,
  recordPlugin,
  renderMessage,
} from "./record_text.ts";
import { estimateRecordBytes } from "./record_size.ts";
import { type LogStoreSinkOptions, resolveSinkOptions } from "./store_sink_options.ts";
import { DropReport } from "./_drop_report.ts";
import { ReportThrottle } from "./_report_throttle.ts";
import { encodeRow } from "./_row_codec.ts";
import type { WorkerRequest } from "./_store_protocol.ts";
import { StoreWorkerClient } from "./_store_worker_client.ts";

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
  const settings = resolveSinkOptions(store, options);
  const {
    capacity,
    batchSize,
    flushIntervalMs,
    maxBytes,
    dropReportIntervalMs,
    disposeTimeoutMs,
    maxBatchBytes,
    log,
  } = settings;

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
  // Drops not yet reported, and not yet persisted.
  let dropsUnreported = 0;
  let dropsUnpersisted = 0;
  // Batches with the writer.
  let inFlight = 0;
  let inFlightRecords = 0;
  const batches = new Map<number, number>(); // batch id -> records
  let nextId = 0;
  let written = 0;
  let lost = 0;
  let unencodable = 0;
  let lastSeq = 0;
  const flushWaiters: { target: number; resolve: () => void }[] = [];
  const drainWaiters: (() => void)[] = [];
  let disposing: Promise<void> | undefined;
  const drops = new DropReport(
    log,
    { intervalMs: dropReportIntervalMs, path: store.path, queueSize: capacity },
    () => {
      if (dropsUnreported > 0) reportDrops();
    },
  );
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

  const sink = ((record: LogRecord): void => {
    if (closed) return;
    if (size >= capacity || bytes >= maxBytes) {
      dropped++;
      dropsUnpersisted++;
      if (dropsUnreported++ === 0) drops.start();
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
    if (force && size === 0 && inFlight === 0 && dropsUnpersisted > 0 && !writer.closed) {
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
    writer.send(message);
  }

  // ---- the writer ----
  const writer = new StoreWorkerClient(
    {
      init: settings.init,
      log,
      queueSize: capacity,
      maxBytes: settings.maxStoreBytes,
      reportIntervalMs: dropReportIntervalMs,
    },
    {
      onAck(id, count, seq) {
        finishBatch(id);
        written += count;
        if (seq > 0) lastSeq = seq;
        settle();
      },
      onLost(id, code, message) {
        const count = finishBatch(id);
        lost += count;
        lostReports.note(count, { code, message });
        settle();
      },
      onCrash() {
        lost += inFlightRecords;
        batches.clear();
        inFlight = 0;
        inFlightRecords = 0;
      },
      onRestart: settle,
    },
  );

  function finishBatch(id: number): number {
    const count = batches.get(id) ?? 0;
    batches.delete(id);
    inFlight--;
    inFlightRecords -= count;
    return count;
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

  function reportDrops(): void {
    const count = dropsUnreported;
    dropsUnreported = 0;
    drops.report(count, dropped, size > capacity / 2);
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
    writer.flushReports();
    closed = true;
    drops.stop();
    const drained = new Promise<void>((resolve) => {
      if (size === 0 && inFlight === 0 && dropsUnpersisted === 0) resolve();
      else drainWaiters.push(resolve);
      pump(true);
    });
    const ok = await race(drained, disposeTimeoutMs);
    // A batch refused during the drain: report it now (to the console; the store is closing)
    // rather than leave a timer behind.
    lostReports.flush();
    writer.flushReports();
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (ok) await race(writer.close(), Math.max(1_000, disposeTimeoutMs));
    writer.terminate();
    const unwritten = size + inFlightRecords;
    lost += unwritten;
    for (const w of flushWaiters.splice(0)) w.resolve();
    ring.fill(undefined);
    size = 0;
    if (!ok) {
      const degraded = writer.degraded;
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
        pruned: writer.pruned,
        capped: writer.capped,
        degraded: writer.degraded,
      }),
    },
    flush: { value: flush },
    prune: { value: (): Promise<number> => writer.prune() },
    [Symbol.asyncDispose]: {
      value: (): Promise<void> => (disposing ??= dispose()),
    },
  });
  return sink;
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
