/**
 * The messages between the store sink (`store_sink.ts`, through `_store_worker_client.ts`)
 * and its writer worker (`_store_worker.ts`). Private to `src/logs/`.
 *
 * @module
 */
import type { LogStoreOptions } from "./log_store.ts";

/** Settings the worker gets first. */
export interface WorkerInit {
  readonly t: "init";
  readonly path: string;
  readonly store: LogStoreOptions;
  readonly retention: {
    readonly retentionDays: number;
    readonly maxRows: number;
    readonly intervalMs: number;
    readonly batchSize: number;
    /** The byte cap of database plus WAL (0: none), enforced after every batch. */
    readonly maxBytes: number;
  };
  readonly minRetryDelayMs: number;
  readonly maxRetryDelayMs: number;
}

/** Messages to the writer worker. */
export type WorkerRequest =
  | WorkerInit
  | {
    readonly t: "rows";
    readonly id: number;
    /** Records in the `encodeRow` format, concatenated. */
    readonly rows: string;
    readonly dropped: number;
  }
  | { readonly t: "prune" }
  | { readonly t: "close" };

/** Messages from the writer worker. */
export type WorkerReply =
  | { readonly t: "ack"; readonly id: number; readonly count: number; readonly lastSeq: number }
  | {
    readonly t: "lost";
    readonly id: number;
    readonly code: string;
    readonly message: string;
  }
  | { readonly t: "degraded"; readonly code: string; readonly message: string }
  | { readonly t: "recovered"; readonly afterMs: number }
  | {
    readonly t: "pruned";
    readonly deleted: number;
    readonly code?: string;
    readonly message?: string;
  }
  | {
    /** The byte cap deleted the oldest records (or failed to: `code`, `message`). */
    readonly t: "capped";
    readonly deleted: number;
    /** Database file plus WAL after it, in bytes. */
    readonly fileBytes: number;
    readonly code?: string;
    readonly message?: string;
  }
  | { readonly t: "closed" };
