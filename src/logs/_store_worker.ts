/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The log store's writer, run as a Web Worker by `getLogStoreSink`: it owns its own SQLite
 * connection, so a slow disk, a lock held by another process or a full disk stalls only this
 * thread, never the host's event loop. After every batch it keeps the database under its byte
 * cap (`retention.ts`). Protocol: see `WorkerRequest` / `WorkerReply` in `_store_protocol.ts`.
 *
 * @module
 */
import { LogStore, type LogStoreOptions } from "./log_store.ts";
import { storeError } from "./log_store_error.ts";
import { type SizeCapPlan, sizeCapPlan } from "./retention.ts";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./_store_protocol.ts";

interface Batch {
  readonly id: number;
  readonly rows: string;
  readonly dropped: number;
}

const post = (reply: WorkerReply) => self.postMessage(reply);

let init: WorkerInit | undefined;
let store: LogStore | undefined;
const pending: Batch[] = [];
let writing = false;
let retryTimer: ReturnType<typeof setTimeout> | undefined;
let retryDelay = 0;
let degradedSince = 0;
let degradedCode = "";
let closing = false;
let pruneTimer: ReturnType<typeof setInterval> | undefined;
let pruning = false;
let capPlan: SizeCapPlan | undefined;
/** The code of the last failed cap run, so that a failure that stays is reported once. */
let capFailure = "";

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const msg = event.data;
  switch (msg.t) {
    case "init":
      init = msg;
      if (msg.retention.maxBytes > 0) {
        capPlan = sizeCapPlan(msg.retention.maxBytes);
        setTimeout(enforceCap, 0); // a database left over the cap by an earlier run
      }
      if (
        msg.retention.intervalMs > 0 &&
        (msg.retention.retentionDays > 0 || msg.retention.maxRows > 0)
      ) {
        pruneTimer = setInterval(startPrune, msg.retention.intervalMs);
        setTimeout(startPrune, 0);
      }
      return;
    case "rows":
      pending.push({ id: msg.id, rows: msg.rows, dropped: msg.dropped });
      drain();
      return;
    case "prune":
      startPrune();
      return;
    case "close":
      closing = true;
      if (pruneTimer !== undefined) clearInterval(pruneTimer);
      finishIfDone();
      return;
  }
};

function openStore(): LogStore {
  if (store === undefined) {
    const options: LogStoreOptions = init!.store;
    store = LogStore.openSync(init!.path, options);
  }
  return store;
}

/** Writes pending batches in order; on a failure that can clear, retries with backoff. */
function drain(): void {
  if (writing || retryTimer !== undefined) return;
  writing = true;
  try {
    while (pending.length > 0) {
      const batch = pending[0]!;
      try {
        const result = openStore().appendEncoded(batch.rows, batch.dropped);
        pending.shift();
        if (degradedSince > 0) {
          post({ t: "recovered", afterMs: Date.now() - degradedSince });
          degradedSince = 0;
          degradedCode = "";
        }
        retryDelay = 0;
        post({ t: "ack", id: batch.id, count: result.count, lastSeq: result.lastSeq });
        enforceCap();
      } catch (e) {
        const error = storeError(e, init!.path, "write to");
        if (!error.retryable) {
          // A batch SQLite refuses for good must not wedge the writer: drop it, count it.
          pending.shift();
          post({ t: "lost", id: batch.id, code: error.code, message: error.message });
          resetStore();
          continue;
        }
        if (degradedSince === 0 || degradedCode !== error.code) {
          post({ t: "degraded", code: error.code, message: error.message });
          degradedCode = error.code;
        }
        if (degradedSince === 0) degradedSince = Date.now();
        if (error.code !== "LOG_STORE_LOCKED") resetStore(); // reopen: the file may be back
        retryDelay = Math.min(
          init!.maxRetryDelayMs,
          Math.max(init!.minRetryDelayMs, retryDelay * 2),
        );
        retryTimer = setTimeout(() => {
          retryTimer = undefined;
          drain();
        }, retryDelay);
        return;
      }
    }
  } finally {
    writing = false;
  }
  finishIfDone();
}

function resetStore(): void {
  try {
    store?.close();
  } catch { /* closing a broken connection */ }
  store = undefined;
}

/**
 * Keeps the database under its byte cap, right after each batch: cheap unless the used pages
 * passed the plan's mark, then deletes the oldest records (see `capSize`).
 */
function enforceCap(): void {
  if (capPlan === undefined || closing) return;
  try {
    const r = openStore().capSize(capPlan, { batchSize: init!.retention.batchSize });
    capFailure = "";
    if (r.deleted > 0) post({ t: "capped", deleted: r.deleted, fileBytes: r.fileBytes });
  } catch (e) {
    const error = storeError(e, init!.path, "cap the size of");
    if (error.code === capFailure) return;
    capFailure = error.code;
    post({ t: "capped", deleted: 0, fileBytes: 0, code: error.code, message: error.message });
  }
}

/** Deletes expired records in small transactions, yielding between them so writes go first. */
function startPrune(): void {
  if (pruning || closing || init === undefined) return;
  pruning = true;
  let total = 0;
  const step = () => {
    if (closing || retryTimer !== undefined) {
      pruning = false;
      return;
    }
    try {
      const n = openStore().prune(init!.retention, { batchSize: init!.retention.batchSize });
      total += n;
      if (n > 0) {
        setTimeout(step, 0);
        return;
      }
      post({ t: "pruned", deleted: total });
    } catch (e) {
      const error = storeError(e, init!.path, "prune");
      post({ t: "pruned", deleted: total, code: error.code, message: error.message });
    }
    pruning = false;
  };
  step();
}

function finishIfDone(): void {
  if (!closing || pending.length > 0 || writing) return;
  if (retryTimer !== undefined) clearTimeout(retryTimer);
  if (pruneTimer !== undefined) clearInterval(pruneTimer);
  resetStore();
  post({ t: "closed" });
  self.close();
}
