/**
 * In-process throughput of the RPC framing layer; prints one JSON object.
 *
 * - decode: NDJSON lines of 100 B and 64 KiB (+ "\n", so most lines span two chunks), fed as
 *   64 KiB chunks (a pipe read), through
 *   `NdjsonDecoder` versus the common `TextDecoderStream` + split-`TransformStream` pipeline.
 *   Both produce one string per line; neither parses JSON, so only framing is compared.
 * - roundTrip: `JsonRpcPeer` request/response over `createMemoryPair`, sequential and with
 *   64 requests in flight.
 *
 * Usage: `deno run scripts/bench/rpc_framing.ts` (a few seconds on 2 cores).
 *
 * @module
 */
import { createMemoryPair, NdjsonDecoder } from "../../src/rpc/mod.ts";
import { median, roundHalfUp } from "./_common.ts";

const CHUNK = 64 * 1024;
const TARGET_BYTES = 48 * 1024 * 1024;
const ROUNDS = 5;

interface Corpus {
  readonly chunks: Uint8Array[];
  readonly lines: number;
  readonly bytes: number;
}

function makeCorpus(lineBytes: number): Corpus {
  const enc = new TextEncoder();
  // A realistic message shape, padded so the encoded line (with "\n") is exactly lineBytes.
  const base = '{"jsonrpc":"2.0","id":123456,"method":"echo","params":{"text":""}}';
  const pad = "x".repeat(lineBytes - base.length - 1);
  const line = enc.encode(
    `{"jsonrpc":"2.0","id":123456,"method":"echo","params":{"text":"${pad}"}}\n`,
  );
  if (line.length !== lineBytes) throw new Error(`line is ${line.length} bytes`);
  const lines = Math.max(1, Math.floor(TARGET_BYTES / lineBytes));
  const all = new Uint8Array(lines * lineBytes);
  for (let i = 0; i < lines; i++) all.set(line, i * lineBytes);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += CHUNK) chunks.push(all.subarray(i, i + CHUNK));
  return { chunks, lines, bytes: all.length };
}

function decodeWithNdjsonDecoder(corpus: Corpus): number {
  const decoder = new NdjsonDecoder();
  let count = 0;
  let chars = 0;
  const onLine = (line: string) => {
    count++;
    chars += line.length;
  };
  const onError = (e: Error) => {
    throw e;
  };
  for (const chunk of corpus.chunks) decoder.push(chunk, onLine, onError);
  decoder.end(onError);
  if (chars === 0) throw new Error("no output");
  return count;
}

async function decodeWithTextDecoderStream(corpus: Corpus): Promise<number> {
  let i = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      const chunk = corpus.chunks[i++];
      if (chunk === undefined) controller.close();
      else controller.enqueue(chunk);
    },
  });
  let rest = "";
  const split = new TransformStream<string, string>({
    transform(text, controller) {
      const parts = (rest + text).split("\n");
      rest = parts.pop() ?? "";
      for (const part of parts) if (part !== "") controller.enqueue(part);
    },
    flush(controller) {
      if (rest !== "") controller.enqueue(rest);
    },
  });
  let count = 0;
  let chars = 0;
  for await (const line of source.pipeThrough(new TextDecoderStream()).pipeThrough(split)) {
    count++;
    chars += line.length;
  }
  if (chars === 0) throw new Error("no output");
  return count;
}

interface Rate {
  readonly linesPerSec: number;
  readonly mbPerSec: number;
  readonly msPerRun: number;
}

async function measureDecode(
  corpus: Corpus,
  run: (corpus: Corpus) => number | Promise<number>,
): Promise<Rate> {
  if ((await run(corpus)) !== corpus.lines) throw new Error("line count mismatch"); // warm-up
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    await run(corpus);
    times.push(performance.now() - t0);
  }
  const ms = median(times);
  return {
    linesPerSec: Math.round(corpus.lines / (ms / 1000)),
    mbPerSec: roundHalfUp(corpus.bytes / (1024 * 1024) / (ms / 1000), 2),
    msPerRun: roundHalfUp(ms, 2),
  };
}

async function measureRoundTrip(concurrency: number, total: number) {
  await using pair = createMemoryPair({ b: { handlers: { echo: (params) => params } } });
  const params = { text: "x".repeat(40) };
  const worker = async (n: number) => {
    for (let i = 0; i < n; i++) await pair.a.request("echo", params);
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker(2_000 / concurrency)));
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, () => worker(total / concurrency)));
  const ms = performance.now() - t0;
  return {
    concurrency,
    requests: total,
    opsPerSec: Math.round(total / (ms / 1000)),
    usPerOp: roundHalfUp((ms * 1000) / total, 2),
  };
}

const decode: Record<string, unknown> = {};
for (const [name, lineBytes] of [["100B", 100], ["64KiB", 64 * 1024 + 1]] as const) {
  const corpus = makeCorpus(lineBytes);
  const ndjsonDecoder = await measureDecode(corpus, decodeWithNdjsonDecoder);
  const textDecoderStream = await measureDecode(corpus, decodeWithTextDecoderStream);
  decode[name] = {
    lineBytes,
    lines: corpus.lines,
    mb: roundHalfUp(corpus.bytes / (1024 * 1024), 2),
    ndjsonDecoder,
    textDecoderStreamSplit: textDecoderStream,
    speedup: roundHalfUp(ndjsonDecoder.linesPerSec / textDecoderStream.linesPerSec, 2),
  };
}

const roundTrip = {
  sequential: await measureRoundTrip(1, 50_000),
  pipelined: await measureRoundTrip(64, 200_000),
};

console.log(JSON.stringify(
  {
    bench: "rpc_framing",
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    chunkBytes: CHUNK,
    decode,
    roundTrip,
  },
  null,
  2,
));
