import { hostname } from "node:os";
import { dirname } from "node:path";
import { getLogger } from "@logtape/logtape";
import {
  Empty,
  headers,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription,
} from "@nats-io/transport-node";
import type { Service } from "@nats-io/services";
import { connectChecked } from "./_connect_checked.ts";
import { svcm } from "./_svcm.ts";
import { MAX_CALL_DEPTH, type PluginHost } from "../host/mod.ts";
import { PLUGIN_NAME } from "../manifest/mod.ts";
import { checkWorkerSecurity, type NatsConfig } from "./nats_options.ts";
import { placementOf } from "./placement.ts";
import {
  callSubject,
  cancelSubject,
  encodeError,
  H,
  METHOD_TOKEN,
  pingSubject,
  queueGroup,
  type ReplyBody,
  serviceName,
} from "./wire.ts";

const MAX_TIMER = 2_147_483_647;

/** The key of a call in flight: its plugin and the caller's call id. */
function flightKey(plugin: string, callId: string): string {
  return `${plugin}\n${callId}`;
}
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options for {@link RemoteWorker.start}. */
export interface RemoteWorkerOptions {
  /** The host whose ready plugins are exposed (the worker does not own it). */
  readonly host: PluginHost;
  /** The NATS connection. Default: the host's `remote.nats` (`serve --nats` sets `servers`). */
  readonly nats?: NatsConfig;
  /** Folder that relative credential and TLS paths resolve against. Default: the config's. */
  readonly baseDir?: string;
  /** Id in service discovery. Default: `<hostname>-<pid>`. */
  readonly workerId?: string;
  /** Largest request or reply body in bytes. Default: the host's `defaults.max_line_bytes`. */
  readonly maxPayloadBytes?: number;
  /** How long `stop()` waits for calls in flight. Default: the host's `app.shutdown_timeout_ms`. */
  readonly drainTimeoutMs?: number;
}

/** One plugin a worker serves. */
export interface ServedPlugin {
  readonly plugin: string;
  readonly version: string;
  readonly methods: readonly string[];
}

/**
 * The worker side of remote plugins (`plugsconc serve`): exposes every ready plugin of a
 * {@linkcode PluginHost} as a NATS service, one endpoint (subject) per method, in the queue
 * group of the plugin so several workers share its calls. Each request runs through the
 * worker's own host (sandbox, supervisor, pipeline, logs); its deadline becomes the call's
 * timeout, so the plugin gets `$/cancel` when it passes, and a host's cancel aborts it.
 *
 * @example
 * ```ts
 * await using host = await PluginHost.start({ configPath: "config.yaml" });
 * await using worker = await RemoteWorker.start({ host }); // on the host's remote.nats
 * ```
 */
export class RemoteWorker implements AsyncDisposable {
  /** This worker's id (in `$SRV.INFO` metadata and in every reply). */
  readonly id: string;
  readonly #host: PluginHost;
  readonly #nc: NatsConnection;
  readonly #max: number;
  readonly #drainMs: number;
  readonly #services: Service[] = [];
  readonly #subs: Subscription[] = [];
  readonly #inFlight = new Map<string, AbortController>();
  readonly #served: ServedPlugin[] = [];
  readonly #log = getLogger(["plugsconc", "remote", "worker"]);
  #idle: (() => void) | undefined;
  #stopping: Promise<void> | undefined;

  private constructor(options: RemoteWorkerOptions, nc: NatsConnection, id: string) {
    this.#host = options.host;
    this.#nc = nc;
    this.id = id;
    this.#max = options.maxPayloadBytes ?? options.host.config.defaults.max_line_bytes;
    this.#drainMs = options.drainTimeoutMs ?? options.host.config.app.shutdown_timeout_ms;
  }

  /**
   * Checks the connection's security, connects and serves the host's ready plugins.
   *
   * @throws {RemoteError} `REMOTE_INSECURE` (an unauthenticated non-loopback server: checked
   *   before connecting), `REMOTE_CONFIG`, `REMOTE_CONNECT`
   */
  static async start(options: RemoteWorkerOptions): Promise<RemoteWorker> {
    const nats = options.nats ?? options.host.config.remote.nats;
    // Before anything else: refused configs never reach the worker id check or a connection.
    checkWorkerSecurity(nats);
    const id = options.workerId ?? `${hostname().replace(/[^-\w]/g, "_")}-${Deno.pid}`;
    if (!/^[-\w]+$/.test(id)) {
      throw new RangeError(`a worker id is letters, digits, '-' and '_', got ${id}`);
    }
    const nc = await connectChecked(nats, {
      role: "worker",
      baseDir: options.baseDir ??
        (options.host.configFile ? dirname(options.host.configFile) : Deno.cwd()),
      name: `plugsconc-${id}`,
    });
    const worker = new RemoteWorker(options, nc, id);
    try {
      await worker.#serveAll();
    } catch (e) {
      await nc.close().catch(() => {});
      throw e;
    }
    return worker;
  }

  /** The plugins it serves. */
  get served(): readonly ServedPlugin[] {
    return this.#served;
  }

  /** Calls being served now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  async #serveAll(): Promise<void> {
    const nc = this.#nc;
    this.#subs.push(nc.subscribe(pingSubject(this.id), { callback: (_e, m) => void m.respond() }));
    const services = svcm(nc);
    for (const p of this.#host.plugins()) {
      // A plugin this config sends to NATS itself is not served back to NATS.
      if (placementOf(this.#host.config, p.name) === "remote") continue;
      // Degraded: some of its instances serve, so it is served.
      if (p.state !== "ready" && p.state !== "degraded") {
        this.#log.warning("plugin {plugin} is {state}: not served on NATS", {
          plugin: p.name,
          state: p.state,
        });
        continue;
      }
      const methods = p.methods.filter((m) => {
        if (METHOD_TOKEN.test(m)) return true;
        this.#log.warning(
          "plugin {plugin}: method {method} is not one NATS subject token ([A-Za-z0-9_-]); not served",
          { plugin: p.name, method: m },
        );
        return false;
      });
      const svc = await services.add({
        name: serviceName(p.name),
        version: p.version,
        description: `plugsconc plugin ${p.name}`,
        queue: queueGroup(p.name),
        metadata: { plugin: p.name, worker: this.id, methods: methods.join(",") },
      });
      for (const m of methods) {
        svc.addEndpoint(m, {
          subject: callSubject(p.name, m),
          handler: (err, msg) => err ? undefined : this.#handle(p.name, m, msg as unknown as Msg),
        });
      }
      this.#services.push(svc);
      this.#subs.push(nc.subscribe(cancelSubject(p.name), {
        callback: (_e, m) => {
          const id = m.headers?.get(H.callId);
          // Only this plugin's call: call ids are the callers' and need not be unique across
          // plugins.
          if (id) {
            this.#inFlight.get(flightKey(p.name, id))?.abort(
              new Error("cancelled by the calling host"),
            );
          }
        },
      }));
      this.#served.push({ plugin: p.name, version: p.version, methods });
      this.#log.info("serving plugin {plugin} {version} on NATS as worker {worker}", {
        plugin: p.name,
        version: p.version,
        worker: this.id,
        methods,
      });
    }
  }

  #handle(plugin: string, method: string, msg: Msg): void {
    const reply = msg.reply;
    if (!reply) return;
    const callId = msg.headers?.get(H.callId) ?? "";
    const hdr = (kind: string): MsgHdrs => {
      const h = headers();
      h.set(H.kind, kind);
      h.set(H.worker, this.id);
      h.set(H.subject, msg.subject);
      h.set(H.callId, callId);
      return h;
    };
    const send = (body: ReplyBody) => {
      let bytes = encoder.encode(JSON.stringify(body));
      // The stdio line limit, and the NATS server's own (max_payload, 1 MiB by default).
      const max = Math.min(this.#max, (this.#nc.info?.max_payload ?? Infinity) - 1024);
      if (bytes.length > max) {
        bytes = encoder.encode(JSON.stringify({
          error: {
            code: "PLUGIN_PROTOCOL",
            message:
              `the reply of ${bytes.length} bytes exceeds the payload limit (${max} bytes: ` +
              "max_line_bytes, or the NATS server's max_payload)",
          },
        }));
      }
      try {
        if (!this.#nc.isClosed()) this.#nc.publish(reply, bytes, { headers: hdr("result") });
      } catch (e) {
        this.#log.warning("could not send the reply of {plugin}.{method}: {error}", {
          plugin,
          method,
          error: (e as Error).message,
        });
      }
    };
    // Before anything can run: the host then knows who holds the call.
    this.#nc.publish(reply, Empty, { headers: hdr("accepted") });
    if (this.#stopping) {
      return send({ error: { code: "PLUGIN_UNAVAILABLE", message: "the worker is stopping" } });
    }
    if (msg.data.length > this.#max) {
      return send({
        error: {
          code: "PLUGIN_CALL_FAILED",
          remoteCode: -32600,
          message: `params of ${msg.data.length} bytes exceed max_line_bytes (${this.#max})`,
        },
      });
    }
    let params: unknown;
    try {
      params = (JSON.parse(decoder.decode(msg.data)) as { params?: unknown }).params;
    } catch (e) {
      return send({
        error: {
          code: "PLUGIN_CALL_FAILED",
          remoteCode: -32700,
          message: `the request is not JSON: ${(e as Error).message}`,
        },
      });
    }
    const asked = Number(msg.headers?.get(H.timeoutMs));
    const timeoutMs = Number.isFinite(asked) && asked >= 1
      ? Math.min(Math.floor(asked), MAX_TIMER)
      : undefined;
    // A call without an id cannot be cancelled; one whose id this plugin already runs is
    // refused: it would take the other call's cancel, or drop its entry when done.
    const key = flightKey(plugin, callId || crypto.randomUUID());
    if (this.#inFlight.has(key)) {
      return send({
        error: {
          code: "PLUGIN_CALL_FAILED",
          remoteCode: -32600,
          message: `call id ${callId} is already in flight on worker ${this.id} for plugin ` +
            `${plugin}: every call needs its own ${H.callId}`,
        },
      });
    }
    const chain = parseChain(msg.headers?.get(H.chain), plugin);
    if (typeof chain === "string") {
      return send({ error: { code: "PLUGIN_CALL_FAILED", remoteCode: -32600, message: chain } });
    }
    const controller = new AbortController();
    this.#inFlight.set(key, controller);
    this.#log.debug("remote call {plugin}.{method} {callId}", { plugin, method, callId });
    this.#host.call(plugin, method, params, { timeoutMs, signal: controller.signal, chain }).then(
      (result) => send({ result: result ?? null }),
      (e) => send({ error: encodeError(e) }),
    ).finally(() => {
      if (this.#inFlight.get(key) === controller) this.#inFlight.delete(key);
      if (this.#inFlight.size === 0) this.#idle?.();
    });
  }

  /**
   * Drains: leaves the queue groups (no new calls), waits for calls in flight (up to the
   * drain timeout), then closes the connection. The host is the caller's to stop. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      await Promise.allSettled(this.#services.map((s) => s.stop()));
      if (this.#inFlight.size > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          this.#idle = resolve;
          timer = setTimeout(resolve, this.#drainMs);
        });
        clearTimeout(timer);
      }
      for (const s of this.#subs) s.unsubscribe();
      await this.#nc.drain().catch(() => {});
    })();
    return this.#stopping;
  }

  /** Same as {@link RemoteWorker.stop}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * The callers of a call from its `Plugsconc-Chain` header (`a,b` for a call of `b`: `["a"]`),
 * `undefined` without one, or why the header is refused.
 */
function parseChain(header: string | undefined, plugin: string): string[] | undefined | string {
  if (header === undefined || header === "") return undefined;
  const names = header.split(",");
  if (
    names.length > MAX_CALL_DEPTH + 1 || names.at(-1) !== plugin ||
    !names.every((n) => PLUGIN_NAME.test(n))
  ) {
    return `the ${H.chain} header must be at most ${MAX_CALL_DEPTH + 1} plugin names ` +
      `separated by commas, ending with ${plugin}`;
  }
  return names.slice(0, -1);
}
