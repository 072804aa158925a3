import { HttpError } from "./http_error.ts";

/** Options for {@link readJsonBody}. */
export interface ReadJsonBodyOptions {
  /** The most bytes the body may have; more is a 413. */
  readonly maxBytes: number;
  /** Aborting it stops reading; the read rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads a call's JSON body: the params of the method (an object or an array), or `undefined`
 * for an empty body or `null`.
 *
 * The size limit holds for every body, not only for one that declares its size: a
 * `Content-Length` over `maxBytes` is refused before reading, and a chunked body is counted
 * while it streams and cancelled as soon as it passes the limit, so a client cannot make the
 * gateway buffer more than `maxBytes`. A body with a `Content-Length` within the limit is
 * read in one go (the HTTP layer never delivers more than it declares).
 *
 * @example
 * ```ts
 * const params = await readJsonBody(request, { maxBytes: 1 << 20, signal });
 * ```
 * @throws {HttpError} `BODY_TOO_LARGE` (413), `BAD_JSON` (400), `PARAMS_INVALID` (400)
 */
export async function readJsonBody(
  request: Request,
  options: ReadJsonBodyOptions,
): Promise<unknown> {
  const { maxBytes, signal } = options;
  if (!(Number.isInteger(maxBytes) && maxBytes > 0)) {
    throw new RangeError(`maxBytes must be a positive integer, got ${maxBytes}`);
  }
  signal?.throwIfAborted();
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) throw tooLarge(maxBytes);
  let bytes: Uint8Array;
  if (request.body === null) {
    bytes = new Uint8Array(0);
  } else if (declared !== null && /^\d+$/.test(declared)) {
    bytes = await untilAborted(request.bytes(), signal);
  } else {
    bytes = await readCapped(request.body, maxBytes, signal);
  }
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    throw new HttpError(400, "BAD_JSON", "the body is not valid UTF-8");
  }
  if (text.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new HttpError(
      400,
      "BAD_JSON",
      `the body is not valid JSON (${e instanceof Error ? e.message : String(e)}); send the ` +
        "method's params as a JSON object or array",
    );
  }
  if (value === null) return undefined;
  if (typeof value !== "object") {
    throw new HttpError(
      400,
      "PARAMS_INVALID",
      `the body must be a JSON object or array (the method's params), not a ${typeof value}`,
    );
  }
  return value;
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError(
    413,
    "BODY_TOO_LARGE",
    `the body is over ${maxBytes} bytes (server.max_body_bytes)`,
  );
}

async function readCapped(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const reader = body.getReader();
  const onAbort = () => void reader.cancel(signal!.reason).catch(() => {});
  signal?.addEventListener("abort", onAbort, { once: true });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      signal?.throwIfAborted();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxBytes);
      }
      chunks.push(value);
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/** `p`, or a rejection with the signal's reason as soon as it aborts. */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
