import assert from "node:assert/strict";
import {
  createMemoryPair,
  encodeFrame,
  encodeMessage,
  FrameDecoder,
  type RpcError,
} from "./mod.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function decodeAll(decoder: FrameDecoder, chunks: Uint8Array[]) {
  const lines: string[] = [];
  const errors: RpcError[] = [];
  for (const c of chunks) decoder.push(c, (l) => lines.push(l), (e) => errors.push(e));
  return { lines, errors };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

Deno.test("encodeFrame() writes @, the payload's byte length in 8 hex digits, the JSON, a newline", () => {
  assert.equal(dec.decode(encodeFrame({ a: 1 })), '@00000007{"a":1}\n');
  // Non-ASCII: the length counts UTF-8 bytes, not characters.
  const frame = encodeFrame({ t: "é€" });
  const json = enc.encode(JSON.stringify({ t: "é€" }));
  assert.equal(dec.decode(frame.subarray(0, 9)), `@${json.length.toString(16).padStart(8, "0")}`);
  assert.deepEqual(frame.subarray(9, -1), json);
  assert.equal(frame.at(-1), 0x0a);
});

Deno.test("FrameDecoder decodes frames and NDJSON lines mixed, split at every byte", () => {
  const big = { text: "x".repeat(70_000), u: "ünï" };
  const stream = concat(
    encodeFrame({ n: 1 }),
    encodeMessage({ n: 2 }),
    encodeFrame(big),
    enc.encode('{"n":3}\r\n\n'),
    encodeFrame({ n: 4 }),
  );
  const want = ['{"n":1}', '{"n":2}', JSON.stringify(big), '{"n":3}', '{"n":4}'];
  for (const step of [1, 7, 4096, 65536, stream.length]) {
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < stream.length; i += step) chunks.push(stream.slice(i, i + step));
    const { lines, errors } = decodeAll(new FrameDecoder(), chunks);
    assert.deepEqual(errors, [], `step ${step}`);
    assert.deepEqual(lines, want, `step ${step}`);
  }
});

Deno.test("FrameDecoder refuses a frame over the limit from its header, without holding any of it", () => {
  const decoder = new FrameDecoder({ maxLineBytes: 1024 });
  const capacity = decoder.capacityBytes;
  // The header claims 4 GiB - 1: refused at once, then skipped by count as the bytes come.
  const { lines, errors } = decodeAll(decoder, [enc.encode("@ffffffff"), new Uint8Array(5000)]);
  assert.deepEqual(lines, []);
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.code, "RPC_LINE_TOO_LONG");
  assert.equal(errors[0]!.details.seenBytes, 0xffffffff);
  assert.equal(decoder.bufferedBytes, 0);
  assert.equal(decoder.capacityBytes, capacity);

  // Just over the limit: skipped whole, and the next frame decodes.
  const d2 = new FrameDecoder({ maxLineBytes: 1024 });
  const over = encodeFrame({ t: "y".repeat(1100) });
  const r = decodeAll(d2, [concat(over, encodeFrame({ ok: true }))]);
  assert.deepEqual(r.errors.map((e) => e.code), ["RPC_LINE_TOO_LONG"]);
  assert.deepEqual(r.lines, ['{"ok":true}']);
  assert.equal(d2.capacityBytes, capacity);
});

Deno.test("FrameDecoder reports a bad header or a missing newline as RPC_BAD_FRAME and resumes at the next line", () => {
  const stream = concat(
    enc.encode("@00zz0001{}\n"), // not hex
    enc.encode('@00000002{}X{"after":1}\n'), // no newline after the payload: dropped to the next
    encodeFrame({ n: 5 }),
  );
  const { lines, errors } = decodeAll(new FrameDecoder(), [stream]);
  assert.deepEqual(errors.map((e) => e.code), ["RPC_BAD_FRAME", "RPC_BAD_FRAME"]);
  assert.deepEqual(lines, ['{"n":5}']);
});

Deno.test("FrameDecoder reports invalid UTF-8 in a frame, over-long lines, and a truncated end", () => {
  const bad = concat(enc.encode("@00000003"), Uint8Array.of(0x22, 0xff, 0x22), enc.encode("\n"));
  const decoder = new FrameDecoder({ maxLineBytes: 64 });
  const r = decodeAll(decoder, [
    bad,
    enc.encode("z".repeat(100) + "\n"),
    encodeFrame([1]),
    enc.encode("@0000"),
  ]);
  assert.deepEqual(r.errors.map((e) => e.code), ["RPC_INVALID_UTF8", "RPC_LINE_TOO_LONG"]);
  assert.deepEqual(r.lines, ["[1]"]);
  const ended: RpcError[] = [];
  decoder.end((e) => ended.push(e));
  assert.deepEqual(ended.map((e) => e.code), ["RPC_TRUNCATED"]);
  assert.throws(() => new FrameDecoder({ maxLineBytes: 0 }), RangeError);
});

Deno.test("FrameDecoder keeps framing the chunk after onLine throws, then rethrows", () => {
  const decoder = new FrameDecoder();
  const seen: string[] = [];
  const chunk = concat(encodeFrame(1), encodeFrame(2), enc.encode("@000000"));
  assert.throws(() =>
    decoder.push(chunk, (l) => {
      seen.push(l);
      throw new Error("boom");
    }), /boom/);
  assert.deepEqual(seen, ["1"]);
  const after: string[] = [];
  decoder.push(enc.encode("013\n"), (l) => after.push(l));
  assert.deepEqual(after, ["3"]);
});

Deno.test("JsonRpcPeer.useFrames(): requests, answers and notifications cross as frames both ways", async () => {
  const sent: string[] = [];
  await using pair = createMemoryPair({
    a: { acceptFrames: true },
    b: {
      acceptFrames: true,
      handlers: { echo: (p) => p, fail: () => Promise.reject(new Error("no")) },
      onNotification: (m) => void sent.push(m),
    },
  });
  assert.equal(pair.a.framed, false);
  pair.a.useFrames();
  pair.b.useFrames();
  assert.equal(pair.a.framed, true);
  const big = { text: "q".repeat(200_000) };
  assert.deepEqual(await pair.a.request("echo", big), big);
  await assert.rejects(pair.a.request("fail", []), /no/);
  await pair.a.notify("hello", {});
  assert.deepEqual(sent, ["hello"]);
  assert.equal(pair.a.protocolErrorCount + pair.b.protocolErrorCount, 0);
});

Deno.test("a peer that accepts frames still reads a sender that only speaks NDJSON", async () => {
  await using pair = createMemoryPair({
    chunkBytes: 3,
    b: { acceptFrames: true, handlers: { echo: (p) => p } },
  });
  assert.deepEqual(await pair.a.request("echo", [1, "two"]), [1, "two"]);
  assert.equal(pair.b.protocolErrorCount, 0);
});

Deno.test("encodeFrame() frames non-ASCII payloads by their UTF-8 length and always ends them with a newline", () => {
  const decoder = new FrameDecoder({ maxLineBytes: 1 << 20 });
  // "é" (2 bytes) once is the case where the UTF-8 text is one byte longer than the string.
  for (const s of ["é", "éé", "€", "😀", "aé", "x".repeat(70_000) + "é"]) {
    const frame = encodeFrame({ s });
    const json = JSON.stringify({ s });
    const bytes = enc.encode(json);
    assert.equal(frame.length, bytes.length + 10, s.slice(-3));
    assert.equal(frame[frame.length - 1], 0x0a);
    assert.equal(dec.decode(frame.subarray(1, 9)), bytes.length.toString(16).padStart(8, "0"));
    const { lines, errors } = decodeAll(decoder, [frame]);
    assert.deepEqual(errors, []);
    assert.deepEqual(lines.map((l) => JSON.parse(l)), [{ s }]);
  }
});
