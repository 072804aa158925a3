import type { PluginHost } from "../../host/mod.ts";
import { dashboardLog, dashboardPlugins } from "./dashboard_view.ts";
import type { MetricHistory } from "./metric_history.ts";

/** What the event stream needs of the host. */
export type StreamHost = Pick<PluginHost, "plugins" | "policy" | "metrics" | "on" | "logs">;

/** Options for {@link EventStreams}. */
export interface EventStreamsOptions {
  /** How often new log records are read from the store. Default: 1000 ms. */
  readonly logPollMs?: number;
  /** How long state changes are gathered into one snapshot. Default: 50 ms. */
  readonly coalesceMs?: number;
}

const encoder = new TextEncoder();
/** Open streams at most: each one reads the log store once a second. */
export const MAX_EVENT_STREAMS = 32;
/** Bytes a client may leave unread before its stream is ended (it reconnects with a snapshot). */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024;

/**
 * The dashboard's Server-Sent Events (`GET /dashboard/events`): a `snapshot` (plugin rows
 * and metric history) at once, on every state change of a plugin (coalesced) and at each
 * metric sample; `change` for each reload, hold or refusal as it happens; `log` with new
 * records of the log store (or `logs-off` when there is none). The store is read on the
 * server (once a second per stream, only new records): the browser never polls.
 */
export class EventStreams {
  readonly #host: StreamHost;
  readonly #history: MetricHistory;
  readonly #logPollMs: number;
  readonly #coalesceMs: number;
  readonly #open = new Set<() => void>();

  constructor(host: StreamHost, history: MetricHistory, options: EventStreamsOptions = {}) {
    this.#host = host;
    this.#history = history;
    this.#logPollMs = options.logPollMs ?? 1000;
    this.#coalesceMs = options.coalesceMs ?? 50;
  }

  /** Streams opened and not yet closed. */
  get size(): number {
    return this.#open.size;
  }

  /** Ends every open stream (the gateway is closing: open streams would hold it up). */
  closeAll(): void {
    for (const close of [...this.#open]) close();
  }

  /** A `text/event-stream` response that lives until the client goes away. */
  open(request: Request, requestId: string): Response {
    const headers = {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "x-request-id": requestId,
    };
    // HEAD gets no body: a stream opened for it would never be read nor cancelled.
    if (request.method === "HEAD") return new Response(null, { headers });
    if (this.#open.size >= MAX_EVENT_STREAMS) {
      return new Response(
        JSON.stringify({
          error: {
            code: "TOO_MANY_STREAMS",
            message: `at most ${MAX_EVENT_STREAMS} dashboard event streams are open at once`,
          },
        }),
        {
          status: 503,
          headers: {
            "content-type": "application/json",
            "retry-after": "5",
            "x-request-id": requestId,
          },
        },
      );
    }
    const cleanups: (() => void)[] = [];
    let closed = false;
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const send = (event: string, data: unknown) => {
      if (closed) return;
      try {
        // A client that stops reading must not grow the host's memory: end its stream.
        if ((controller.desiredSize ?? 0) < -MAX_UNREAD_BYTES) return close();
        controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
      } catch {
        close();
      }
    };
    const close = () => {
      if (closed) return;
      closed = true;
      this.#open.delete(close);
      for (const c of cleanups.splice(0)) c();
      try {
        controller.close();
      } catch { /* already closed or cancelled */ }
    };
    let pending: ReturnType<typeof setTimeout> | undefined;
    const snapshot = () => {
      clearTimeout(pending);
      pending = undefined;
      send("snapshot", {
        plugins: dashboardPlugins(this.#host),
        history: this.#history.samples(),
        intervalMs: this.#history.intervalMs,
      });
    };
    const soon = () => pending ??= setTimeout(snapshot, this.#coalesceMs);
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
        this.#open.add(close);
        cleanups.push(this.#history.start());
        cleanups.push(this.#host.on("state", soon));
        cleanups.push(this.#host.on("change", (e) => {
          send("change", {
            t: Date.now(),
            plugin: e.plugin ?? null,
            outcome: e.outcome,
            reason: e.reason ?? null,
          });
          soon();
        }));
        const tick = setInterval(snapshot, this.#history.intervalMs);
        // A comment line now and then: proxies and the browser see a live connection.
        const ping = setInterval(() => {
          try {
            controller.enqueue(encoder.encode(": ping\n\n"));
          } catch {
            close();
          }
        }, 15_000);
        cleanups.push(() => {
          clearInterval(tick);
          clearInterval(ping);
          clearTimeout(pending);
        });
        snapshot();
        this.#tailLogs(send, cleanups);
      },
      cancel: () => close(),
    }, new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }));
    request.signal.addEventListener("abort", close, { once: true });
    cleanups.push(() => request.signal.removeEventListener("abort", close));
    return new Response(body, { headers });
  }

  #tailLogs(send: (event: string, data: unknown) => void, cleanups: (() => void)[]): void {
    let afterSeq: number | undefined;
    let off = false;
    const read = () => {
      try {
        const entries = this.#host.logs.query(
          afterSeq === undefined ? { limit: 200 } : { afterSeq, limit: 500 },
        );
        afterSeq = entries.at(-1)?.seq ?? afterSeq ?? 0;
        off = false;
        if (entries.length > 0) send("log", entries.map(dashboardLog));
      } catch (e) {
        // No store (off, or not created yet): say so once, and keep looking for it.
        if (!off) send("logs-off", { reason: e instanceof Error ? e.message : String(e) });
        off = true;
      }
    };
    read();
    const timer = setInterval(read, this.#logPollMs);
    cleanups.push(() => clearInterval(timer));
  }
}
