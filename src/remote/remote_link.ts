import { getLogger } from "@logtape/logtape";
import {
  createInbox,
  Empty,
  headers,
  type Msg,
  type NatsConnection,
  NoRespondersError,
  RequestError,
} from "@nats-io/transport-node";
import { connectChecked } from "./_connect_checked.ts";
import { svcm } from "./_svcm.ts";
import {
  type EndpointCallOptions,
  PluginCallCancelledError,
  PluginCallError,
  PluginProtocolError,
  PluginTimeoutError,
  PluginUnavailableError,
} from "../runtime/mod.ts";
import type { NatsConfig } from "./nats_options.ts";
import { RemoteWorkerLostError } from "./remote_error.ts";
import {
  callSubject,
  cancelSubject,
  decodeError,
  H,
  pingSubject,
  type ReplyBody,
  serviceName,
} from "./wire.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options for {@link RemoteLink.connect}. */
export interface RemoteLinkOptions {
  readonly nats: NatsConfig;
  /** Folder that relative credential and TLS paths resolve against. */
  readonly baseDir: string;
  /** Largest request or reply body in bytes (the stdio line limit). */
  readonly maxPayloadBytes: number;
  /** How long a worker may take to confirm a request before it counts as lost. */
  readonly acceptTimeoutMs: number;
  /** How often workers holding calls are checked (no responders on their ping = gone). */
  readonly probeIntervalMs: number;
}

/** A worker of a plugin, as `$SRV.INFO` reported it. */
export interface RemoteWorkerInfo {
  readonly id: string;
  readonly version: string;
  readonly methods: readonly string[];
}

interface Pending {
  readonly plugin: string;
  readonly method: string;
  readonly subject: string;
  readonly callId: string;
  worker: string | undefined;
  acceptedAt: number;
  fail(e: unknown, cancel: boolean): void;
  reply(msg: Msg, worker: string): void;
}

/**
 * The host's NATS connection for remote plugins: sends calls (`Plugsconc-*` headers, reply
 * to a per-call inbox subject), matches replies to the calls waiting for them, refuses a
 * reply that names another subject or call or worker, and fails the calls of a worker that
 * left (its ping subject has no responders) so the pipeline can retry idempotent ones.
 */
export class RemoteLink implements AsyncDisposable {
  readonly #nc: NatsConnection;
  readonly #o: RemoteLinkOptions;
  readonly #inbox = createInbox();
  readonly #pending = new Map<string, Pending>();
  readonly #probing = new Set<string>();
  readonly #log = getLogger(["plugsconc", "remote"]);
  #seq = 0;
  #connected = true;
  #generation = 1;
  #refused = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;

  private constructor(nc: NatsConnection, options: RemoteLinkOptions) {
    this.#nc = nc;
    this.#o = options;
    nc.subscribe(`${this.#inbox}.*`, { callback: (_e, m) => this.#onReply(m) });
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect") this.#connected = false;
        if (s.type === "reconnect") {
          this.#connected = true;
          this.#generation++;
        }
      }
    })().catch(() => {});
    nc.closed().then(() => (this.#connected = false));
  }

  /**
   * Checks the connection's security (as a worker does), then connects to
   * `remote.nats.servers`.
   *
   * @throws {RemoteError} `REMOTE_INSECURE` (a non-loopback server without credentials:
   *   checked before connecting; or one that did not ask for any), `REMOTE_CONFIG` without
   *   servers or with a bad url, `REMOTE_CONNECT` when none answers
   */
  static async connect(options: RemoteLinkOptions): Promise<RemoteLink> {
    const nats = options.nats;
    // Before any connection: a non-loopback server without credentials would get every
    // call's params.
    const nc = await connectChecked(nats, {
      role: "host",
      baseDir: options.baseDir,
      name: "plugsconc-host",
    });
    return new RemoteLink(nc, options);
  }

  /** Whether the connection is up now. */
  get connected(): boolean {
    return this.#connected && !this.#nc.isClosed();
  }

  /** Increases at every reconnect. */
  get generation(): number {
    return this.#generation;
  }

  /** Replies refused so far (wrong subject, call or worker). */
  get refused(): number {
    return this.#refused;
  }

  /** Calls waiting for a reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /** The workers serving `plugin` now (`$SRV.INFO`), waiting at most `timeoutMs`. */
  async workers(plugin: string, timeoutMs: number): Promise<RemoteWorkerInfo[]> {
    const found: RemoteWorkerInfo[] = [];
    const client = svcm(this.#nc).client({ maxWait: timeoutMs, strategy: "timer" } as never);
    for await (const info of await client.info(serviceName(plugin))) {
      found.push({
        id: info.metadata?.worker ?? info.id,
        version: info.version,
        methods: (info.metadata?.methods ?? "").split(",").filter((m) => m !== ""),
      });
    }
    return found.sort((a, b) => a.id.localeCompare(b.id));
  }

  /**
   * Calls `plugin.method` on one of its workers (NATS picks it in the queue group).
   *
   * @throws {PluginUnavailableError} no worker serves it, or the link is down;
   *   {RemoteWorkerLostError} the worker went away; {PluginTimeoutError};
   *   {PluginCallCancelledError}; the worker's own errors, mapped as a local call's
   */
  call(
    plugin: string,
    method: string,
    params: unknown,
    options: EndpointCallOptions,
  ): Promise<unknown> {
    const { signal, timeoutMs } = options;
    const subject = callSubject(plugin, method);
    if (!this.connected) {
      return Promise.reject(
        new PluginUnavailableError(plugin, "disconnected", "the host's NATS connection is down", {
          method,
        }),
      );
    }
    if (signal?.aborted) {
      return Promise.reject(new PluginCallCancelledError(plugin, method, { cause: signal.reason }));
    }
    const body = encoder.encode(JSON.stringify({ params }));
    // The stdio line limit, and the NATS server's own (max_payload, 1 MiB by default).
    const natsMax = (this.#nc.info?.max_payload ?? Infinity) - 1024;
    if (body.length > Math.min(this.#o.maxPayloadBytes, natsMax)) {
      return Promise.reject(
        new PluginCallError(plugin, method, {
          code: -32600,
          message: body.length > this.#o.maxPayloadBytes
            ? `params of ${body.length} bytes exceed max_line_bytes (${this.#o.maxPayloadBytes})`
            : `params of ${body.length} bytes exceed the NATS server's max_payload (${
              natsMax + 1024
            })`,
        }),
      );
    }
    const token = String(++this.#seq);
    const callId = `${this.#inbox.slice(7)}-${token}`;
    return new Promise<unknown>((resolve, reject) => {
      const deadline = setTimeout(
        () => p.fail(new PluginTimeoutError(plugin, method, timeoutMs), true),
        timeoutMs,
      );
      const accept = setTimeout(() => {
        if (p.worker === undefined) {
          p.fail(
            new RemoteWorkerLostError(
              plugin,
              method,
              undefined,
              `did not confirm the request within remote.accept_timeout_ms (${this.#o.acceptTimeoutMs} ms)`,
            ),
            true,
          );
        }
      }, Math.min(this.#o.acceptTimeoutMs, timeoutMs));
      const onAbort = () =>
        p.fail(new PluginCallCancelledError(plugin, method, { cause: signal!.reason }), true);
      const done = () => {
        clearTimeout(deadline);
        clearTimeout(accept);
        signal?.removeEventListener("abort", onAbort);
        this.#pending.delete(token);
      };
      const p: Pending = {
        plugin,
        method,
        subject,
        callId,
        worker: undefined,
        acceptedAt: 0,
        fail: (e, cancel) => {
          if (!this.#pending.has(token)) return;
          done();
          if (cancel && !this.#nc.isClosed()) {
            const h = headers();
            h.set(H.callId, callId);
            this.#nc.publish(cancelSubject(plugin), Empty, { headers: h });
          }
          reject(e);
        },
        reply: (msg, worker) => {
          done();
          if (msg.data.length > this.#o.maxPayloadBytes) {
            return reject(
              new PluginProtocolError(
                plugin,
                `worker ${worker} sent a reply of ${msg.data.length} bytes, over max_line_bytes`,
                { method },
              ),
            );
          }
          let answer: ReplyBody;
          try {
            answer = JSON.parse(decoder.decode(msg.data)) as ReplyBody;
          } catch {
            return reject(
              new PluginProtocolError(plugin, `worker ${worker} sent a reply that is not JSON`, {
                method,
              }),
            );
          }
          if (answer !== null && typeof answer === "object" && "error" in answer) {
            const e = decodeError(answer.error, { plugin, method, timeoutMs, worker });
            this.#log.debug("remote call {plugin}.{method} {callId} failed on {worker}: {error}", {
              plugin,
              method,
              callId,
              worker,
              error: e.message,
            });
            return reject(e);
          }
          this.#log.debug("remote call {plugin}.{method} {callId} served by {worker}", {
            plugin,
            method,
            callId,
            worker,
          });
          resolve((answer as { result?: unknown })?.result);
        },
      };
      this.#pending.set(token, p);
      signal?.addEventListener("abort", onAbort, { once: true });
      const h = headers();
      h.set(H.callId, callId);
      h.set(H.timeoutMs, String(timeoutMs));
      if (options.chain !== undefined && options.chain.length > 1) {
        h.set(H.chain, options.chain.join(","));
      }
      try {
        this.#nc.publish(subject, body, { reply: `${this.#inbox}.${token}`, headers: h });
      } catch (e) {
        p.fail(
          new PluginUnavailableError(plugin, "disconnected", `NATS refused the request: ${e}`, {
            method,
          }),
          false,
        );
      }
      this.#timer ??= setInterval(() => this.#probe(), this.#o.probeIntervalMs);
    });
  }

  #onReply(msg: Msg): void {
    const token = msg.subject.slice(this.#inbox.length + 1);
    const p = this.#pending.get(token);
    // A late reply (after a timeout or cancel) is normal; anything else is refused below.
    if (p === undefined) return;
    const worker = msg.headers?.get(H.worker) ?? "";
    const subject = msg.headers?.get(H.subject);
    const callId = msg.headers?.get(H.callId);
    // NATS's own "no responders" status carries no plugsconc headers and no body, and comes
    // only before a worker took the call; a 503 that names a call goes through the checks.
    const bare = !worker && !subject && !callId && !msg.headers?.get(H.kind) &&
      msg.data.length === 0;
    if (bare && msg.headers?.code === 503) {
      if (p.worker !== undefined) {
        return this.#refuse(p, `a no-responders status came after worker ${p.worker} took it`);
      }
      return p.fail(
        new PluginUnavailableError(
          p.plugin,
          "unavailable",
          `no worker serves it on NATS (nothing listens on ${p.subject}); start one with ` +
            "`plugsconc serve --nats <url>`, and see plugins list for its workers",
          { method: p.method },
        ),
        false,
      );
    }
    if (subject !== p.subject || callId !== p.callId || worker === "") {
      return this.#refuse(p, `it names subject ${subject} and call ${callId}`);
    }
    if (p.worker !== undefined && worker !== p.worker) {
      return this.#refuse(p, `it came from worker ${worker}, not ${p.worker} which took the call`);
    }
    if (msg.headers?.get(H.kind) === "accepted") {
      p.worker = worker;
      p.acceptedAt = performance.now();
      return;
    }
    p.reply(msg, worker);
  }

  #refuse(p: Pending, why: string): void {
    this.#refused++;
    this.#log.warning("refused a reply to {plugin}.{method} (called on {subject}): {why}", {
      plugin: p.plugin,
      method: p.method,
      subject: p.subject,
      why,
    });
  }

  /** Checks every worker holding a call for long enough; fails the calls of those gone. */
  #probe(): void {
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const since = performance.now() - this.#o.probeIntervalMs;
    const workers = new Set<string>();
    for (const p of this.#pending.values()) {
      if (p.worker !== undefined && p.acceptedAt < since) workers.add(p.worker);
    }
    for (const w of workers) {
      if (this.#probing.has(w) || this.#nc.isClosed()) continue;
      this.#probing.add(w);
      this.#nc.request(pingSubject(w), Empty, {
        timeout: Math.max(1000, this.#o.probeIntervalMs * 4),
      })
        .then(
          () => {},
          (e) => {
            const gone = e instanceof NoRespondersError ||
              (e instanceof RequestError && e.isNoResponders()) ||
              e?.cause instanceof NoRespondersError;
            if (gone) this.#lost(w, "left NATS (its connection closed) before answering");
          },
        ).finally(() => this.#probing.delete(w));
    }
  }

  #lost(worker: string, reason: string): void {
    const calls = [...this.#pending.values()].filter((p) => p.worker === worker);
    if (calls.length === 0) return;
    this.#log.warning("worker {worker} is gone; failing its {count} calls in flight", {
      worker,
      count: calls.length,
    });
    for (const p of calls) {
      p.fail(new RemoteWorkerLostError(p.plugin, p.method, worker, reason), false);
    }
  }

  /** Fails the calls still waiting and closes the connection. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#timer);
      for (const p of [...this.#pending.values()]) {
        p.fail(
          new PluginUnavailableError(p.plugin, "stopping", "the host is stopping", {
            method: p.method,
          }),
          true,
        );
      }
      await this.#nc.drain().catch(() => this.#nc.close());
    })();
    return this.#closing;
  }

  /** Same as {@link RemoteLink.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
