import type { Logger } from "@logtape/logtape";
import { ReportThrottle } from "./_report_throttle.ts";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./_store_protocol.ts";

/** What the sink hears of its batches from {@link StoreWorkerClient}. */
export interface StoreWorkerEvents {
  /** The writer committed batch `id`: `count` records, the last numbered `lastSeq` (0: none). */
  onAck(id: number, count: number, lastSeq: number): void;
  /** The writer refused batch `id` for good. */
  onLost(id: number, code: string, message: string): void;
  /** The worker failed: every batch sent to it is lost. */
  onCrash(): void;
  /** A new worker runs after a failure and takes batches again. */
  onRestart(): void;
}

/** Settings of a {@link StoreWorkerClient}. */
export interface StoreWorkerClientOptions {
  /** The first message to every worker started. */
  readonly init: WorkerInit;
  readonly log: Logger;
  /** The sink's `queueSize`, for the message that writes fail. */
  readonly queueSize: number;
  /** The sink's `maxBytes`, for the message that the cap deleted records. */
  readonly maxBytes: number;
  /** Deletions by the cap are reported at most this often. */
  readonly reportIntervalMs: number;
}

/**
 * The sink's end of its writer worker (`_store_worker.ts`, protocol in `_store_protocol.ts`):
 * starts it, starts a new one when it fails, takes it the sink's messages, and turns what it
 * reports besides batches (failing writes and their recovery, retention, the byte cap) into
 * counters and log records. Private to `src/logs/`.
 */
export class StoreWorkerClient {
  readonly #options: StoreWorkerClientOptions;
  readonly #events: StoreWorkerEvents;
  readonly #log: Logger;
  readonly #path: string;
  #worker!: Worker;
  #closed = false;
  #closedReply: (() => void) | undefined;
  readonly #pruneWaiters: ((n: number) => void)[] = [];
  #pruned = 0;
  #capped = 0;
  #degraded: { code: string; message: string; since: number } | null = null;
  /** Deletions by the byte cap: reported summed, at most once per `reportIntervalMs`. */
  readonly #capReports: ReportThrottle<number>;

  /** Starts the worker. */
  constructor(options: StoreWorkerClientOptions, events: StoreWorkerEvents) {
    this.#options = options;
    this.#events = events;
    this.#log = options.log;
    this.#path = options.init.path;
    this.#capReports = new ReportThrottle<number>(
      options.reportIntervalMs,
      (count, fileBytes) =>
        this.#log.warning(
          "log store reached logging.store.max_bytes ({maxBytes} bytes): deleted the {deleted} " +
            "oldest records ({total} in all)",
          {
            maxBytes: options.maxBytes,
            deleted: count,
            total: this.#capped,
            fileBytes,
            path: this.#path,
          },
        ),
    );
    this.#start();
  }

  /** Whether {@link StoreWorkerClient.close} or {@link StoreWorkerClient.terminate} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Records deleted by retention and by the byte cap. */
  get pruned(): number {
    return this.#pruned;
  }

  /** Of those, records deleted by the byte cap. */
  get capped(): number {
    return this.#capped;
  }

  /** Why writes currently fail (the writer retries them), or `null`. */
  get degraded(): { code: string; message: string; since: number } | null {
    return this.#degraded;
  }

  /** Posts `message` to the worker. */
  send(message: WorkerRequest): void {
    this.#worker.postMessage(message);
  }

  /** Runs retention now; resolves with the number of records deleted (0 once closed). */
  prune(): Promise<number> {
    if (this.#closed) return Promise.resolve(0);
    return new Promise<number>((resolve) => {
      this.#pruneWaiters.push(resolve);
      this.#worker.postMessage({ t: "prune" } satisfies WorkerRequest);
    });
  }

  /** Asks the worker to finish and close; resolves when it did (or failed). */
  close(): Promise<void> {
    this.#closed = true;
    const closed = new Promise<void>((resolve) => (this.#closedReply = resolve));
    this.#worker.postMessage({ t: "close" } satisfies WorkerRequest);
    return closed;
  }

  /** Stops the worker at once; pending {@link StoreWorkerClient.prune} calls resolve 0. */
  terminate(): void {
    this.#closed = true;
    this.#worker.terminate();
    for (const resolve of this.#pruneWaiters.splice(0)) resolve(0);
  }

  /** Reports the byte cap's pending deletions now. */
  flushReports(): void {
    this.#capReports.flush();
  }

  #start(): void {
    const worker = new Worker(new URL("./_store_worker.ts", import.meta.url), { type: "module" });
    this.#worker = worker;
    worker.onmessage = (e: MessageEvent<WorkerReply>) => this.#onReply(e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#onCrash(e.message);
    };
    worker.postMessage(this.#options.init);
  }

  #onCrash(reason: string): void {
    // A bug in the writer: what it held is lost; start a fresh one so logging goes on.
    this.#worker.terminate();
    this.#events.onCrash();
    this.#log.error("log store writer failed ({reason}); restarting it", {
      reason,
      path: this.#path,
    });
    if (this.#closed) {
      this.#closedReply?.();
      return;
    }
    this.#start();
    this.#events.onRestart();
  }

  #onReply(msg: WorkerReply): void {
    switch (msg.t) {
      case "ack":
        this.#events.onAck(msg.id, msg.count, msg.lastSeq);
        return;
      case "lost":
        this.#events.onLost(msg.id, msg.code, msg.message);
        return;
      case "degraded":
        this.#degraded = { code: msg.code, message: msg.message, since: Date.now() };
        this.#log.warning(
          "log store cannot write ({code}): {message} Holding up to {queueSize} records in " +
            "memory (more are dropped and counted); the host keeps serving.",
          {
            code: msg.code,
            message: msg.message,
            queueSize: this.#options.queueSize,
            path: this.#path,
          },
        );
        return;
      case "recovered":
        this.#degraded = null;
        this.#log.info("log store writes again after {ms} ms", {
          ms: msg.afterMs,
          path: this.#path,
        });
        return;
      case "pruned":
        this.#pruned += msg.deleted;
        if (msg.code !== undefined) {
          this.#log.warning("log store retention stopped early ({code}): {message}", {
            code: msg.code,
            message: msg.message,
            path: this.#path,
          });
        }
        this.#pruneWaiters.shift()?.(msg.deleted);
        return;
      case "capped":
        this.#pruned += msg.deleted;
        this.#capped += msg.deleted;
        if (msg.deleted > 0) this.#capReports.note(msg.deleted, msg.fileBytes);
        if (msg.code !== undefined) {
          this.#log.warning("log store size cap failed ({code}): {message}", {
            code: msg.code,
            message: msg.message,
            path: this.#path,
          });
        }
        return;
      case "closed":
        this.#closedReply?.();
        return;
    }
  }
}
