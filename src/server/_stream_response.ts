import { getLogger } from "@logtape/logtape";
import type { PluginStream } from "../host/mod.ts";
import { StreamError } from "../runtime/mod.ts";
import { errorStatus } from "./error_status.ts";
import { HttpError } from "./http_error.ts";

/** How a streamed call goes over HTTP: Server-Sent Events or NDJSON. */
export type StreamFormat = "sse" | "ndjson";

const SSE_TYPE = "text/event-stream";
const NDJSON_TYPE = "application/x-ndjson";
/**
 * The credit window of a gateway stream: what the host holds while the client is slow. With
 * `host.stream`'s default `maxBufferedBytes` (16 MiB) a chunk may be at most 1 MiB of JSON.
 */
export const GATEWAY_STREAM_WINDOW = 16;
const encoder = new TextEncoder();
const log = getLogger(["plugsconc", "http"]);

/**
 * The streaming format an `Accept` header asks for: `text/event-stream` (SSE) or
 * `application/x-ndjson`, whichever it names first with a non-zero quality; `undefined` for a
 * plain JSON call.
 */
export function streamFormat(accept: string | null): StreamFormat | undefined {
  if (accept === null) return undefined;
  for (const part of accept.split(",")) {
    const [type, ...rest] = part.trim().toLowerCase().split(";");
    if (rest.some((p) => /^\s*q\s*=\s*0(?:\.0*)?\s*$/.test(p))) continue;
    if (type?.trim() === SSE_TYPE) return "sse";
    if (type?.trim() === NDJSON_TYPE) return "ndjson";
  }
  return undefined;
}

/** One event of a stream, encoded for `format`. */
function encodeEvent(format: StreamFormat, kind: "chunk" | "result" | "error", data: unknown) {
  if (format === "ndjson") return encoder.encode(JSON.stringify({ [kind]: data }) + "\n");
  // `JSON.stringify` writes no raw newline, so the data is one `data:` line.
  const body = kind === "chunk" ? data : { [kind]: data };
  return encoder.encode(`event: ${kind}\ndata: ${JSON.stringify(body ?? null)}\n\n`);
}

/**
 * The answer to a streamed call: waits for the stream's first event, so that a refusal before
 * any chunk (unknown method, `RATE_LIMITED`, `STREAM_NOT_SUPPORTED`, ...) is a plain error
 * answer with its status; then a 200 whose body carries each chunk, then the result or the
 * error, pulled from the stream only as fast as the client reads (a client that stops
 * reading pauses the plugin within the credit window). The client going away cancels it.
 *
 * SSE: `event: chunk` / `data: <chunk>`, then `event: result` / `data: {"result": ...}` or
 * `event: error` / `data: {"error": {"code", "message"}}`. NDJSON: `{"chunk": ...}` lines, then
 * `{"result": ...}` or `{"error": {...}}`.
 *
 * @param onEnd runs once when the stream is over (ended, failed or cancelled)
 * @param errorOf what the client is told for an error (the gateway's own reason to cancel)
 * @throws what the stream failed with before its first chunk
 */
export async function streamResponse(
  stream: PluginStream,
  format: StreamFormat,
  requestId: string,
  label: { plugin: string; method: string },
  hooks: { onEnd: () => void; errorOf: (e: unknown) => unknown },
): Promise<Response> {
  const { onEnd, errorOf } = hooks;
  let first: IteratorResult<unknown>;
  try {
    first = await stream.next();
  } catch (e) {
    onEnd();
    throw errorOf(e);
  }
  let pending: IteratorResult<unknown> | undefined = first;
  let over = false;
  const end = (outcome: string) => {
    if (over) return;
    over = true;
    onEnd();
    log.debug("stream {plugin}.{method} ended ({outcome}) after {chunks} chunks", {
      ...label,
      requestId,
      outcome,
      chunks: stream.received,
    });
  };
  const body = new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      try {
        const step = pending ?? await stream.next();
        pending = undefined;
        if (!step.done) {
          controller.enqueue(encodeEvent(format, "chunk", step.value));
          return;
        }
        controller.enqueue(encodeEvent(format, "result", await stream.result));
        end("result");
      } catch (e) {
        const error = errorOf(e);
        // The client stopped reading until the deadline: its own doing, not an internal error.
        const s = error instanceof StreamError && error.code === "STREAM_NOT_READ"
          ? { code: error.code, message: error.message }
          : errorStatus(error, requestId);
        if (s.code === "INTERNAL") log.error("stream failed: {error}", { requestId, error: e });
        controller.enqueue(encodeEvent(format, "error", { code: s.code, message: s.message }));
        end(s.code);
      }
      controller.close();
    },
    cancel: () => {
      stream.cancel(
        new HttpError(499, "CLIENT_CLOSED_REQUEST", "the client went away during the stream"),
      );
      end("client gone");
    },
  }, { highWaterMark: 1 });
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": format === "sse" ? `${SSE_TYPE}; charset=utf-8` : NDJSON_TYPE,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "x-request-id": requestId,
    },
  });
}
