import { getConfig, getLogger, withContext } from "@logtape/logtape";
import type { Config } from "../config/mod.ts";
import type { PluginHost } from "../host/mod.ts";
import type { LogStoreSinkStats } from "../logs/mod.ts";
import { accessLog } from "./_access_log.ts";
import { authenticate } from "./_authenticate.ts";
import { CallHandler } from "./_call_handler.ts";
import { assetResponse, EventStreams, MetricHistory } from "./dashboard/mod.ts";
import { healthzResponse } from "./_healthz.ts";
import { HostCheck } from "./_host_check.ts";
import { errorResponse, jsonResponse } from "./_json_response.ts";
import { pathOf, type Route, routeError, routeOf } from "./_routes.ts";
import { BearerAuth } from "./bearer_auth.ts";
import { checkListen } from "./check_listen.ts";
import { errorStatus } from "./error_status.ts";
import { GatewayMetrics } from "./gateway_metrics.ts";
import { HttpError } from "./http_error.ts";
import { pluginViews } from "./plugin_view.ts";
import { requestIdOf } from "./request_id.ts";
import { ServerError } from "./server_error.ts";
import { readTlsFiles } from "./tls_files.ts";

/** The `server` section of the config. */
export type ServerConfig = Config["server"];

/** Options for {@link Gateway.start}; each field defaults to the host's `server` config. */
export interface GatewayOptions extends Partial<Omit<ServerConfig, "enabled">> {
  /**
   * The log store's sink (`HostLogging.sink`): its queue depth and written/dropped/lost
   * counts are published at `/metrics`. Default: none (those metrics are left out).
   */
  readonly logSink?: { readonly stats: LogStoreSinkStats };
  /**
   * How long {@link Gateway.close} lets requests in flight finish before it cancels their
   * plugin calls. Default: 5000 ms.
   */
  readonly closeGraceMs?: number;
}

/** What the gateway needs of the host. */
export type GatewayHost = Pick<
  PluginHost,
  | "call"
  | "stream"
  | "plugins"
  | "policy"
  | "health"
  | "metrics"
  | "timeoutFor"
  | "config"
  | "on"
  | "logs"
>;

interface Settings {
  readonly token: string | undefined;
  readonly max_body_bytes: number;
  readonly request_timeout_ms: number;
  readonly closeGraceMs: number;
  readonly logSink: GatewayOptions["logSink"];
}

const log = getLogger(["plugsconc", "http"]);

/**
 * The HTTP gateway (DESIGN §7): plugin calls, plugin state, health and Prometheus metrics
 * over `Deno.serve`, in front of a running {@link PluginHost}.
 *
 * Routes:
 * - `POST /v1/plugins/{name}/{method}`, body = the params as JSON -> `{"result": ...}`
 * - `GET /v1/plugins`, `GET /v1/plugins/{name}`: state, version, instances, health, policy,
 *   grants and call counters
 * - `GET /healthz`: 200 when the host and every enabled plugin is healthy, else 503; never
 *   behind the token (load balancers and orchestrators probe it without secrets)
 * - `GET /metrics`: Prometheus text format 0.0.4, behind the token like the API (Prometheus
 *   scrapes with `authorization: { credentials: ... }`)
 * - `GET /` and `GET /dashboard/*.{js,css}`: the dashboard's files (no data, so no token);
 *   `GET /dashboard/events`: its Server-Sent Events, behind the token
 *
 * Errors are `{"error": {"code", "message"}}`; every answer carries `X-Request-Id` (the
 * client's when sane, else a new UUID), and every log record written while the request is
 * handled (the gateway's access record, the pipeline's, the supervisor's) carries it as
 * `requestId` through LogTape's implicit context.
 *
 * With `tls` (`{ cert, key }`, PEM file paths) it serves HTTPS only, and {@link Gateway.url} is
 * `https://`; TLS does not lift the token rule below.
 *
 * Without `token` the gateway only listens on loopback, and then refuses requests whose `Host`
 * is not a loopback name (DNS rebinding) and calls whose `Content-Type` is not JSON (a web page
 * can send `text/plain` POSTs to 127.0.0.1 without a CORS preflight).
 *
 * @example
 * ```ts
 * await using host = await PluginHost.start({ configPath: "config.yaml" });
 * await using gateway = await Gateway.start(host, host.config.server);
 * console.log(`listening on ${gateway.url}`);
 * ```
 */
export class Gateway implements AsyncDisposable {
  readonly #host: GatewayHost;
  readonly #auth: BearerAuth | undefined;
  /** Used only without a token. */
  readonly #hostCheck = new HostCheck();
  readonly #calls: CallHandler;
  readonly #closeGraceMs: number;
  readonly #metrics: GatewayMetrics;
  /** The dashboard's event streams. */
  readonly #streams: EventStreams;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #https = false;
  #closing: Promise<void> | undefined;

  private constructor(host: GatewayHost, options: Settings) {
    this.#host = host;
    this.#auth = options.token === undefined ? undefined : new BearerAuth(options.token);
    this.#calls = new CallHandler(host, options.max_body_bytes, options.request_timeout_ms);
    this.#closeGraceMs = options.closeGraceMs;
    this.#metrics = new GatewayMetrics(host.metrics, options.logSink);
    this.#streams = new EventStreams(host, new MetricHistory(host.metrics));
  }

  /**
   * Starts listening. `listen` with port 0 takes a free port (see {@link Gateway.url}).
   *
   * @throws {ServerError} `SERVER_INSECURE` for a non-loopback `listen` without `token`;
   *   `SERVER_ADDR_IN_USE` when the port is taken; `SERVER_LISTEN` when the address cannot be
   *   bound or parsed; `SERVER_TLS` naming the `tls` file that is missing, unreadable or not
   *   a matching PEM certificate and key
   */
  static start(host: GatewayHost, options: GatewayOptions = {}): Promise<Gateway> {
    try {
      return Promise.resolve(Gateway.#listen(host, options));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  static #listen(host: GatewayHost, options: GatewayOptions): Gateway {
    const defaults = host.config.server;
    const listen = options.listen ?? defaults.listen;
    const token = "token" in options ? options.token : defaults.token;
    const maxBodyBytes = options.max_body_bytes ?? defaults.max_body_bytes;
    const requestTimeoutMs = options.request_timeout_ms ?? defaults.request_timeout_ms;
    const closeGraceMs = options.closeGraceMs ?? 5000;
    const tlsPaths = "tls" in options ? options.tls : defaults.tls;
    for (
      const [k, v] of [
        ["max_body_bytes", maxBodyBytes],
        ["request_timeout_ms", requestTimeoutMs],
        ["closeGraceMs", closeGraceMs],
      ] as const
    ) {
      if (!(Number.isInteger(v) && v > 0)) {
        throw new RangeError(`${k} must be a positive integer, got ${v}`);
      }
    }
    const addr = checkListen(listen, token);
    const tls = tlsPaths === undefined ? undefined : readTlsFiles(tlsPaths, listen);
    const gateway = new Gateway(host, {
      token,
      max_body_bytes: maxBodyBytes,
      request_timeout_ms: requestTimeoutMs,
      closeGraceMs,
      logSink: options.logSink,
    });
    try {
      gateway.#server = Deno.serve({
        hostname: addr.hostname,
        port: addr.port,
        ...tls,
        // No "Listening on" line of Deno's own: `run` prints the address itself.
        onListen: () => {},
        onError: (e) => {
          log.error("HTTP handler failed: {error}", { error: String(e) });
          return new Response(null, { status: 500 });
        },
      }, (request) => gateway.#handle(request));
      gateway.#https = tls !== undefined;
      gateway.#calls.startSweeping();
    } catch (e) {
      if (tlsPaths !== undefined && !(e instanceof Deno.errors.AddrInUse) && isTlsError(e)) {
        throw new ServerError(
          "SERVER_TLS",
          `cannot serve HTTPS with server.tls.cert ${tlsPaths.cert} and server.tls.key ` +
            `${tlsPaths.key}: ${tlsProblem(e)}; give a PEM certificate and its unencrypted PEM ` +
            "private key",
          { listen, cause: e },
        );
      }
      if (e instanceof Deno.errors.AddrInUse) {
        throw new ServerError(
          "SERVER_ADDR_IN_USE",
          `cannot listen on ${listen}: the address is in use (another plugsconc, or another ` +
            "program); stop it or change server.listen",
          { listen, cause: e },
        );
      }
      throw new ServerError(
        "SERVER_LISTEN",
        `cannot listen on ${listen}: ${
          e instanceof Error ? e.message : String(e)
        }; check server.listen`,
        { listen, cause: e },
      );
    }
    return gateway;
  }

  /** The address it listens on (the real port when `listen` had port 0). */
  get addr(): Deno.NetAddr {
    if (this.#server === undefined) throw new Error("the gateway is not listening");
    return this.#server.addr;
  }

  /** Its base URL, e.g. `http://127.0.0.1:8787` (IPv6 in brackets; `https://` with `tls`). */
  get url(): string {
    const { hostname, port } = this.addr;
    return `${this.#https ? "https" : "http"}://${
      hostname.includes(":") ? `[${hostname}]` : hostname
    }:${port}`;
  }

  /**
   * Stops accepting connections and lets requests in flight finish; after `closeGraceMs` the
   * plugin calls still running are cancelled (the plugins get `$/cancel`). Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const server = this.#server;
      if (server === undefined) return;
      // Event streams never end by themselves; shutdown would wait for them.
      this.#streams.closeAll();
      const shutdown = server.shutdown();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), this.#closeGraceMs);
      });
      try {
        if (await Promise.race([shutdown.then(() => "done" as const), grace]) === "timeout") {
          this.#calls.cancelAll();
          await shutdown;
        }
      } finally {
        clearTimeout(timer);
        this.#calls.stopSweeping();
      }
      await server.finished;
    })();
    return this.#closing;
  }

  /** Same as {@link Gateway.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #handle(request: Request): Promise<Response> {
    const t0 = performance.now();
    const done = this.#metrics.start();
    const requestId = requestIdOf(request.headers.get("x-request-id"));
    const route = routeOf(pathOf(request.url));
    const handle = async () => {
      let response: Response;
      let failure: { code: string; message: string } | undefined;
      let failed: unknown;
      try {
        response = await this.#dispatch(request, route, requestId, t0);
      } catch (e) {
        failed = e;
        const s = errorStatus(e, requestId);
        failure = s;
        response = errorResponse(s.status, s.code, s.message, requestId, s.headers);
      }
      if (request.method === "HEAD") {
        response = new Response(null, { status: response.status, headers: response.headers });
      }
      const seconds = (performance.now() - t0) / 1000;
      done();
      this.#metrics.observe(route.label, response.status, seconds);
      accessLog(request, route, response.status, seconds, failure, failed);
      return response;
    };
    // Without LogTape's implicit contexts configured, withContext would only warn, per request.
    return getConfig()?.contextLocalStorage === undefined
      ? await handle()
      : await withContext({ requestId }, handle);
  }

  async #dispatch(
    request: Request,
    route: Route,
    requestId: string,
    t0: number,
  ): Promise<Response> {
    const verb = request.method;
    if (!route.allow.split(", ").includes(verb)) throw routeError(route, verb, request.url);
    if (this.#auth === undefined) this.#hostCheck.check(request);
    if (route.label === "/" || route.label === "/dashboard/{asset}") {
      // The dashboard's files hold no data, so they load without the token (a browser cannot
      // send it on navigation); the page asks for it and sends it on every data request.
      return (await assetResponse(pathOf(request.url), request, requestId))!;
    }
    if (route.label === "/healthz") {
      const health = this.#host.health();
      // Error messages can name files; only an authenticated caller (or any, without a token)
      // gets them.
      const detailed = this.#auth === undefined ||
        this.#auth.check(request.headers.get("authorization")) === "ok";
      return healthzResponse(health, this.#closing !== undefined, detailed, requestId);
    }
    authenticate(this.#auth, request);
    switch (route.label) {
      case "/v1/plugins/{name}/{method}":
        return await this.#calls.handle(request, route.plugin!, route.method!, requestId, t0);
      case "/v1/plugins":
        return jsonResponse(200, { plugins: pluginViews(this.#host) }, requestId);
      case "/v1/plugins/{name}": {
        const [view] = pluginViews(this.#host, route.plugin);
        if (view === undefined) {
          const known = this.#host.plugins().map((p) => p.name);
          throw new HttpError(
            404,
            "NOT_FOUND",
            `no plugin named ${route.plugin}; known plugins: ${known.join(", ") || "(none)"}`,
          );
        }
        return jsonResponse(200, view, requestId);
      }
      case "/dashboard/events":
        if (this.#closing !== undefined) {
          throw new HttpError(503, "SERVER_CLOSING", "the gateway is shutting down");
        }
        return this.#streams.open(request, requestId);
      case "/metrics":
        return new Response(this.#metrics.prometheus(), {
          headers: {
            "content-type": "text/plain; version=0.0.4; charset=utf-8",
            "cache-control": "no-store",
            "x-request-id": requestId,
          },
        });
      default:
        throw new Error(`unhandled route ${route.label}`);
    }
  }
}

/** Whether `Deno.serve` refused the certificate or key rather than the address. */
function isTlsError(e: unknown): boolean {
  return e instanceof Deno.errors.InvalidData ||
    (e instanceof Error && /certificate|key|pem|tls/i.test(e.message));
}

function tlsProblem(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return /KeyMismatch/.test(message) ? "the key does not belong to the certificate" : message;
}
