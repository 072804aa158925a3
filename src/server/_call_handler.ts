import type { PluginHost } from "../host/mod.ts";
import { PlugsconcError } from "../errors/mod.ts";
import { jsonResponse } from "./_json_response.ts";
import { CLIENT_CLOSED_REQUEST } from "./error_status.ts";
import { HttpError } from "./http_error.ts";
import { readJsonBody } from "./read_json_body.ts";
import { GATEWAY_STREAM_WINDOW, streamFormat, streamResponse } from "./_stream_response.ts";

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

interface InFlightCall {
  readonly controller: AbortController;
  /** `performance.now()` by which the body must be read; Infinity once it is. */
  bodyDeadline: number;
}

/** How often body deadlines are checked. */
const SWEEP_MS = 50;

/**
 * Serves `POST /v1/plugins/{name}/{method}`: a JSON body within `maxBodyBytes` that must arrive
 * within `requestTimeoutMs`, then the plugin call with what is left of that time, cancelled
 * when the client goes away or the gateway closes.
 */
export class CallHandler {
  readonly #host: Pick<PluginHost, "call" | "timeoutFor" | "stream">;
  readonly #maxBodyBytes: number;
  readonly #requestTimeoutMs: number;
  /** Calls being handled, each with the time its body must have arrived by. */
  readonly #inFlight = new Set<InFlightCall>();
  /**
   * One timer for every body deadline (408) instead of one per request: it fires at most
   * `SWEEP_MS` late, and a request costs no timer.
   */
  #sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(
    host: Pick<PluginHost, "call" | "timeoutFor" | "stream">,
    maxBodyBytes: number,
    requestTimeoutMs: number,
  ) {
    this.#host = host;
    this.#maxBodyBytes = maxBodyBytes;
    this.#requestTimeoutMs = requestTimeoutMs;
  }

  /** Starts checking body deadlines (the timer does not keep the process alive). */
  startSweeping(): void {
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
    Deno.unrefTimer(this.#sweeper);
  }

  /** Stops checking body deadlines. */
  stopSweeping(): void {
    clearInterval(this.#sweeper);
  }

  /** Cancels every call in flight with 503 `SERVER_CLOSING` (the plugins get `$/cancel`). */
  cancelAll(): void {
    for (const { controller } of this.#inFlight) {
      controller.abort(new HttpError(503, "SERVER_CLOSING", "the gateway is shutting down"));
    }
  }

  /**
   * Calls `plugin.method` with the request's body as params; `t0` is when the request came.
   *
   * @throws {HttpError} `UNSUPPORTED_MEDIA_TYPE`, the body's errors, `REQUEST_TIMEOUT`,
   *   `CLIENT_CLOSED_REQUEST`, `SERVER_CLOSING`; and the call's own errors
   */
  async handle(
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
    const release = () => {
      this.#inFlight.delete(entry);
      request.signal.removeEventListener("abort", onGone);
    };
    let streaming = false;
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
      const format = streamFormat(request.headers.get("accept"));
      if (format !== undefined) {
        // Accept: text/event-stream or application/x-ndjson. Held (and cancelled by the client
        // going away or the gateway closing) until the stream is over.
        streaming = true;
        const stream = this.#host.stream(plugin, method, params, {
          signal: controller.signal,
          timeoutMs: capped ? Math.max(1, left) : undefined,
          window: GATEWAY_STREAM_WINDOW,
        });
        return await streamResponse(stream, format, requestId, { plugin, method }, {
          onEnd: release,
          errorOf: (e) =>
            controller.signal.reason instanceof HttpError ? controller.signal.reason : e,
        });
      }
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
      if (!streaming) release();
    }
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
}
