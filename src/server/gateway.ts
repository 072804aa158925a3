import { getConfig, getLogger, withContext } from "@logtape/logtape";
import type { Config } from "../config/mod.ts";
import type { PluginHost } from "../host/mod.ts";
import type { LogStoreSinkStats } from "../logs/mod.ts";
import { PlugsconcError } from "../errors/mod.ts";
import { BearerAuth } from "./bearer_auth.ts";
import { CLIENT_CLOSED_REQUEST, errorStatus } from "./error_status.ts";
import { GatewayMetrics, type RouteLabel } from "./gateway_metrics.ts";
import { HttpError } from "./http_error.ts";
import {
  hostOfHeader,
  isLoopbackHost,
  type ListenAddress,
  parseListenAddress,
} from "./listen_address.ts";
import { pluginViews } from "./plugin_view.ts";
import { readJsonBody } from "./read_json_body.ts";
import { requestIdOf } from "./request_id.ts";
import { ServerError } from "./server_error.ts";

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
  "call" | "plugins" | "policy" | "health" | "metrics" | "timeoutFor" | "config"
>;

/** A plugin name as manifests allow it. */
const PLUGIN_NAME = /^[a-z][a-z0-9-]{0,62}$/;
/** A method name a client may call: never a protocol method (`$/...`) or host service. */
const METHOD_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const GET_ONLY = "GET, HEAD";

interface InFlightCall {
  readonly controller: AbortController;
  /** `performance.now()` by which the body must be read; Infinity once it is. */
  bodyDeadline: number;
}

/** How often body deadlines are checked. */
const SWEEP_MS = 50;

interface Settings {
  readonly token: string | undefined;
  readonly max_body_bytes: number;
  readonly request_timeout_ms: number;
  readonly closeGraceMs: number;
  readonly logSink: GatewayOptions["logSink"];
}

interface Route {
  readonly label: RouteLabel;
  /** HTTP methods the route answers (`Allow`). */
  readonly allow: string;
  readonly plugin?: string;
  readonly method?: string;
}

const ROUTES = {
  call: "/v1/plugins/{name}/{method}",
  plugin: "/v1/plugins/{name}",
  plugins: "/v1/plugins",
  healthz: "/healthz",
  metrics: "/metrics",
} as const;

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
 *
 * Errors are `{"error": {"code", "message"}}`; every answer carries `X-Request-Id` (the
 * client's when sane, else a new UUID), and every log record written while the request is
 * handled (the gateway's access record, the pipeline's, the supervisor's) carries it as
 * `requestId` through LogTape's implicit context.
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
  readonly #maxBodyBytes: number;
  readonly #requestTimeoutMs: number;
  readonly #closeGraceMs: number;
  readonly #metrics: GatewayMetrics;
  /** Calls being handled, each with the time its body must have arrived by. */
  readonly #inFlight = new Set<InFlightCall>();
  /**
   * One timer for every body deadline (408) instead of one per request: it fires at most
   * `SWEEP_MS` late, and a request costs no timer.
   */
  #sweeper: ReturnType<typeof setInterval> | undefined;
  /** `Host` header values already checked, and whether they are loopback names. */
  readonly #hostsSeen = new Map<string, boolean>();
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #closing: Promise<void> | undefined;

  private constructor(host: GatewayHost, options: Settings) {
    this.#host = host;
    this.#auth = options.token === undefined ? undefined : new BearerAuth(options.token);
    this.#maxBodyBytes = options.max_body_bytes;
    this.#requestTimeoutMs = options.request_timeout_ms;
    this.#closeGraceMs = options.closeGraceMs;
    this.#metrics = new GatewayMetrics(host.metrics, options.logSink);
  }

  /**
   * Starts listening. `listen` with port 0 takes a free port (see {@link Gateway.url}).
   *
   * @throws {ServerError} `SERVER_INSECURE` for a non-loopback `listen` without `token`;
   *   `SERVER_ADDR_IN_USE` when the port is taken; `SERVER_LISTEN` when the address cannot be
   *   bound or parsed
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
        // No "Listening on" line of Deno's own: `run` prints the address itself.
        onListen: () => {},
        onError: (e) => {
          log.error("HTTP handler failed: {error}", { error: String(e) });
          return new Response(null, { status: 500 });
        },
      }, (request) => gateway.#handle(request));
      gateway.#sweeper = setInterval(() => gateway.#sweep(), SWEEP_MS);
      Deno.unrefTimer(gateway.#sweeper);
    } catch (e) {
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

  /** Its base URL, e.g. `http://127.0.0.1:8787` (IPv6 in brackets). */
  get url(): string {
    const { hostname, port } = this.addr;
    return `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  }

  /**
   * Stops accepting connections and lets requests in flight finish; after `closeGraceMs` the
   * plugin calls still running are cancelled (the plugins get `$/cancel`). Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const server = this.#server;
      if (server === undefined) return;
      const shutdown = server.shutdown();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), this.#closeGraceMs);
      });
      try {
        if (await Promise.race([shutdown.then(() => "done" as const), grace]) === "timeout") {
          for (const { controller } of this.#inFlight) {
            controller.abort(new HttpError(503, "SERVER_CLOSING", "the gateway is shutting down"));
          }
          await shutdown;
        }
      } finally {
        clearTimeout(timer);
        clearInterval(this.#sweeper);
      }
      await server.finished;
    })();
    return this.#closing;
  }

  /** Same as {@link Gateway.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Aborts the calls whose body is late (408). */
  #sweep(): void {
    if (this.#inFlight.size === 0) return;
    const now = performance.now();
    for (const call of this.#inFlight) {
      if (now < call.bodyDeadline) continue;
      call.bodyDeadline = Infinity;
      call.controller.abort(
        new HttpError(
          408,
          "REQUEST_TIMEOUT",
          `the body did not arrive within ${this.#requestTimeoutMs} ms (server.request_timeout_ms)`,
        ),
      );
    }
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
    if (!route.allow.split(", ").includes(verb)) {
      if (route.label === "other") {
        throw new HttpError(
          404,
          "NOT_FOUND",
          `no route for ${pathOf(request.url)}; routes: POST ${ROUTES.call}, GET ` +
            `${ROUTES.plugins}, GET ${ROUTES.plugin}, GET ${ROUTES.healthz}, GET ${ROUTES.metrics}`,
        );
      }
      throw new HttpError(
        405,
        "METHOD_NOT_ALLOWED",
        `${route.label} answers ${route.allow}, not ${verb}`,
        { allow: route.allow },
      );
    }
    if (this.#auth === undefined) this.#checkHost(request);
    if (route.label === "/healthz") return this.#healthz(request, requestId);
    this.#authenticate(request);
    switch (route.label) {
      case "/v1/plugins/{name}/{method}":
        return await this.#call(request, route.plugin!, route.method!, requestId, t0);
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

  /** Without a token: a browser page on another origin must not reach us via DNS rebinding. */
  #checkHost(request: Request): void {
    const header = request.headers.get("host");
    if (header === null) return;
    let ok = this.#hostsSeen.get(header);
    if (ok === undefined) {
      const host = hostOfHeader(header);
      ok = host !== undefined && isLoopbackHost(host);
      if (this.#hostsSeen.size >= 64) this.#hostsSeen.clear();
      this.#hostsSeen.set(header, ok);
    }
    if (!ok) {
      throw new HttpError(
        403,
        "HOST_NOT_ALLOWED",
        `Host ${JSON.stringify(header)} is not a loopback name; without server.token the ` +
          "gateway only answers requests addressed to localhost or 127.0.0.1",
      );
    }
  }

  #authenticate(request: Request): void {
    if (this.#auth === undefined) return;
    const result = this.#auth.check(request.headers.get("authorization"));
    if (result === "ok") return;
    if (result === "missing") {
      throw new HttpError(
        401,
        "TOKEN_MISSING",
        "this gateway needs a bearer token: send Authorization: Bearer <server.token>",
        { "www-authenticate": 'Bearer realm="plugsconc"' },
      );
    }
    throw new HttpError(401, "TOKEN_INVALID", "the bearer token is not the gateway's token", {
      "www-authenticate": 'Bearer realm="plugsconc", error="invalid_token"',
    });
  }

  #healthz(request: Request, requestId: string): Response {
    const health = this.#host.health();
    const closing = this.#closing !== undefined;
    const ok = health.status === "healthy" && !closing;
    // Error messages can name files; only an authenticated caller (or any, without a token)
    // gets them.
    const detailed = this.#auth === undefined ||
      this.#auth.check(request.headers.get("authorization")) === "ok";
    const plugins: Record<string, { status: string; instances: number; error?: string }> = {};
    for (const [name, p] of Object.entries(health.plugins)) {
      plugins[name] = {
        status: p.status,
        instances: p.instances.length,
        ...(detailed && p.error !== undefined ? { error: p.error } : {}),
      };
    }
    return jsonResponse(ok ? 200 : 503, {
      status: closing ? "closing" : health.status,
      not_healthy: Object.entries(health.plugins).filter(([, p]) => p.status !== "healthy").map((
        [name],
      ) => name),
      plugins,
    }, requestId);
  }

  async #call(
    request: Request,
    plugin: string,
    method: string,
    requestId: string,
    t0: number,
  ): Promise<Response> {
    const type = request.headers.get("content-type");
    if (type === null || !JSON_TYPE.test(type)) {
      throw new HttpError(
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        `send the params as JSON with Content-Type: application/json (got ${
          type === null ? "none" : JSON.stringify(type)
        }); with curl: --json '{...}'`,
      );
    }
    // Our own controller, linked to the request's signal only while the call runs: Deno also
    // aborts `request.signal` after a successful response (legacy behaviour), which must not
    // reach anything still listening.
    const controller = new AbortController();
    const onGone = () =>
      controller.abort(
        new HttpError(CLIENT_CLOSED_REQUEST, "CLIENT_CLOSED_REQUEST", "the client went away"),
      );
    request.signal.addEventListener("abort", onGone, { once: true });
    if (request.signal.aborted) onGone();
    const entry: InFlightCall = { controller, bodyDeadline: t0 + this.#requestTimeoutMs };
    this.#inFlight.add(entry);
    try {
      let params: unknown;
      try {
        params = await readJsonBody(request, {
          maxBytes: this.#maxBodyBytes,
          signal: controller.signal,
        });
      } catch (e) {
        if (controller.signal.aborted && !(e instanceof HttpError)) throw controller.signal.reason;
        throw e;
      } finally {
        entry.bodyDeadline = Infinity;
      }
      // request_timeout_ms is a ceiling over the whole request: the call gets what is left of
      // it when that is less than the plugin's own timeout.
      const left = Math.floor(this.#requestTimeoutMs - (performance.now() - t0));
      const own = this.#host.timeoutFor(plugin, method);
      const capped = left < own;
      let result: unknown;
      try {
        result = await this.#host.call(plugin, method, params, {
          signal: controller.signal,
          timeoutMs: capped ? Math.max(1, left) : undefined,
        });
      } catch (e) {
        if (controller.signal.reason instanceof HttpError) throw controller.signal.reason;
        if (capped && e instanceof PlugsconcError && e.code === "PLUGIN_TIMEOUT") {
          throw new PlugsconcError(
            "PLUGIN_TIMEOUT",
            `${plugin}.${method} did not answer within ${
              Math.max(1, left)
            } ms, what was left of the gateway's server.request_timeout_ms ` +
              `(${this.#requestTimeoutMs} ms), and was cancelled`,
            { cause: e, details: { plugin, method, timeoutMs: Math.max(1, left) } },
          );
        }
        throw e;
      }
      return jsonResponse(200, { result: result ?? null }, requestId);
    } finally {
      this.#inFlight.delete(entry);
      request.signal.removeEventListener("abort", onGone);
    }
  }
}

/** The path of a request URL (`http://host:port/path?query`), without parsing the whole URL. */
function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  let end = url.length;
  const q = url.indexOf("?", start);
  if (q >= 0) end = q;
  const h = url.indexOf("#", start);
  if (h >= 0 && h < end) end = h;
  return url.slice(start, end);
}

const OTHER: Route = { label: "other", allow: "" };

/** Routes of paths seen, so a busy route is matched once; bounded (paths come from clients). */
const routeCache = new Map<string, Route>();

function routeOf(path: string): Route {
  let route = routeCache.get(path);
  if (route === undefined) {
    route = matchRoute(path);
    if (route !== OTHER) {
      if (routeCache.size >= 1024) routeCache.clear();
      routeCache.set(path, route);
    }
  }
  return route;
}

function matchRoute(path: string): Route {
  switch (path) {
    case "/healthz":
      return { label: "/healthz", allow: GET_ONLY };
    case "/metrics":
      return { label: "/metrics", allow: GET_ONLY };
    case "/v1/plugins":
      return { label: "/v1/plugins", allow: GET_ONLY };
  }
  if (!path.startsWith("/v1/plugins/")) return OTHER;
  const rest = path.slice("/v1/plugins/".length).split("/");
  const plugin = rest[0]!;
  if (rest.length === 1 && PLUGIN_NAME.test(plugin)) {
    return { label: "/v1/plugins/{name}", allow: GET_ONLY, plugin };
  }
  if (rest.length === 2 && PLUGIN_NAME.test(plugin) && METHOD_NAME.test(rest[1]!)) {
    return { label: "/v1/plugins/{name}/{method}", allow: "POST", plugin, method: rest[1]! };
  }
  return OTHER;
}

function jsonResponse(status: number, body: unknown, requestId: string): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json",
      "cache-control": "no-store",
      "x-request-id": requestId,
    },
  });
}

function errorResponse(
  status: number,
  code: string,
  message: string,
  requestId: string,
  headers: Readonly<Record<string, string>>,
): Response {
  const response = jsonResponse(status, { error: { code, message } }, requestId);
  for (const [k, v] of Object.entries(headers)) response.headers.set(k, v);
  return response;
}

/**
 * One record per request, inside the request's context (so it carries `requestId`): debug for
 * answers that are not the server's fault, warning for plugin failures (5xx), error for our
 * own bugs.
 */
function accessLog(
  request: Request,
  route: Route,
  status: number,
  seconds: number,
  failure: { code: string; message: string } | undefined,
  failed: unknown,
): void {
  const level = failure?.code === "INTERNAL"
    ? "error"
    : status >= 500 && status !== CLIENT_CLOSED_REQUEST
    ? "warning"
    : "debug";
  // Most requests are debug records nobody keeps: build nothing for them.
  if (!log.isEnabledFor(level)) return;
  const fields: Record<string, unknown> = {
    httpMethod: request.method,
    route: route.label,
    ...(route.plugin === undefined ? {} : { plugin: route.plugin }),
    ...(route.method === undefined ? {} : { method: route.method }),
    status,
    ms: Math.round(seconds * 1e5) / 100,
    ...(failure === undefined ? {} : { code: failure.code, error: failure.message }),
  };
  const message = "{httpMethod} {route} {status} in {ms} ms";
  if (level === "error") {
    fields.cause = failed instanceof Error ? (failed.stack ?? failed.message) : String(failed);
    log.error(message + ": {cause}", fields);
  } else if (level === "warning") {
    log.warning(message + ": {error}", fields);
  } else {
    log.debug(message, fields);
  }
}

/**
 * Checks `server.listen` and `server.token` as {@link Gateway.start} does, without listening:
 * `run` calls it before starting any plugin.
 *
 * @throws {ServerError} `SERVER_LISTEN` for an address that is not host:port,
 *   `SERVER_INSECURE` for a non-loopback one without a token
 */
export function checkListen(listen: string, token: string | undefined): ListenAddress {
  let addr: ListenAddress;
  try {
    addr = parseListenAddress(listen);
  } catch (e) {
    throw new ServerError(
      "SERVER_LISTEN",
      `server.listen ${JSON.stringify(listen)} is not host:port (e.g. 127.0.0.1:8787)`,
      { listen, cause: e },
    );
  }
  if (!addr.loopback && token === undefined) {
    throw new ServerError(
      "SERVER_INSECURE",
      `refusing to serve plugin calls on ${listen} without a token: anyone who can reach ` +
        "that address could call every plugin. Set server.token (16+ characters, e.g. " +
        "token: ${PLUGSCONC_TOKEN}) or listen on a loopback address such as 127.0.0.1:8787",
      { listen },
    );
  }
  return addr;
}
