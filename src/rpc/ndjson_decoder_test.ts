import assert from "node:assert/strict";
import { DEFAULT_MAX_LINE_BYTES, encodeMessage, NdjsonDecoder } from "./ndjson_decoder.ts";
import { RpcError, type RpcErrorCode } from "./rpc_error.ts";

const enc = new TextEncoder();

/** Runs `chunks` through a fresh decoder; returns lines and error codes in arrival order. */
function decode(
  chunks: readonly (string | Uint8Array)[],
  options: { maxLineBytes?: number; end?: boolean } = {},
): { lines: string[]; errors: RpcError[]; events: string[]; decoder: NdjsonDecoder } {
  const decoder = new NdjsonDecoder({ maxLineBytes: options.maxLineBytes });
  const lines: string[] = [];
  const errors: RpcError[] = [];
  const events: string[] = [];
  const onLine = (line: string) => {
    lines.push(line);
    events.push(`line:${line}`);
  };
  const onError = (error: RpcError) => {
    errors.push(error);
    events.push(`error:${error.code}`);
  };
  for (const chunk of chunks) {
    decoder.push(typeof chunk === "string" ? enc.encode(chunk) : chunk, onLine, onError);
  }
  if (options.end ?? true) decoder.end(onError);
  return { lines, errors, events, decoder };
}

function codes(errors: readonly RpcError[]): RpcErrorCode[] {
  return errors.map((e) => e.code);
}

Deno.test("NdjsonDecoder joins a line split at every possible byte position", () => {
  const text = '{"a":"héllo wörld ✓ 🎉"}\n{"b":2}\n';
  const bytes = enc.encode(text);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const { lines, errors } = decode([bytes.subarray(0, cut), bytes.subarray(cut)]);
    assert.deepEqual(lines, ['{"a":"héllo wörld ✓ 🎉"}', '{"b":2}'], `cut at ${cut}`);
    assert.deepEqual(errors, [], `cut at ${cut}`);
  }
});

Deno.test("NdjsonDecoder reassembles a stream fed one byte at a time", () => {
  const bytes = enc.encode("first\nsecond 🎉\nthird\n");
  const chunks = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
  const { lines, errors } = decode(chunks);
  assert.deepEqual(lines, ["first", "second 🎉", "third"]);
  assert.equal(errors.length, 0);
});

Deno.test("NdjsonDecoder emits every line of a chunk holding many lines, in order", () => {
  const expected = Array.from({ length: 500 }, (_, i) => JSON.stringify({ i }));
  const { lines } = decode([expected.join("\n") + "\n"]);
  assert.deepEqual(lines, expected);
});

Deno.test("NdjsonDecoder strips CRLF endings and skips empty lines", () => {
  const { lines, errors } = decode(["a\r\n\r\n\nb\r", "\nc\n\n"]);
  assert.deepEqual(lines, ["a", "b", "c"]);
  assert.equal(errors.length, 0);
});

Deno.test("NdjsonDecoder reports an over-long line and resumes at the next line", () => {
  const { events, errors } = decode(["ok1\n0123456789ABC\nok2\n"], { maxLineBytes: 10 });
  assert.deepEqual(events, ["line:ok1", "error:RPC_LINE_TOO_LONG", "line:ok2"]);
  assert.equal(errors[0]?.details.maxLineBytes, 10);
  assert.equal(errors[0]?.details.line, 2);
});

Deno.test("NdjsonDecoder reports an over-long line spanning chunks once and drops its rest", () => {
  const { events } = decode(["ok1\n01234", "56789AB", "CDEFGHIJ", "KLM\nok2\n"], {
    maxLineBytes: 10,
  });
  assert.deepEqual(events, ["line:ok1", "error:RPC_LINE_TOO_LONG", "line:ok2"]);
});

Deno.test("NdjsonDecoder accepts a line of exactly maxLineBytes", () => {
  const { lines, errors } = decode(["0123456789\n", "01234", "56789\n"], { maxLineBytes: 10 });
  assert.deepEqual(lines, ["0123456789", "0123456789"]);
  assert.equal(errors.length, 0);
});

Deno.test("NdjsonDecoder never buffers more than maxLineBytes of a line without newline", () => {
  const decoder = new NdjsonDecoder({ maxLineBytes: 1024 });
  const errors: RpcError[] = [];
  const junk = new Uint8Array(700).fill(0x61);
  for (let i = 0; i < 100; i++) {
    decoder.push(junk, () => assert.fail("no line expected"), (e) => errors.push(e));
    assert.ok(decoder.bufferedBytes <= 1024, `buffered ${decoder.bufferedBytes}`);
  }
  assert.deepEqual(codes(errors), ["RPC_LINE_TOO_LONG"]);
  const lines: string[] = [];
  decoder.push(enc.encode("tail\nnext\n"), (l) => lines.push(l), (e) => errors.push(e));
  assert.deepEqual(lines, ["next"]);
});

Deno.test("NdjsonDecoder reports invalid UTF-8 for that line only", () => {
  const bad = new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]); // "{", two invalid bytes, "}"
  const parts = [enc.encode("before\n"), bad, enc.encode("\nafter\n")];
  const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    joined.set(p, at);
    at += p.length;
  }
  // Whole chunk (fast path falls back) and split (buffered path) must agree.
  for (const chunks of [[joined], [joined.subarray(0, 9), joined.subarray(9)]]) {
    const { events, errors } = decode(chunks);
    assert.deepEqual(events, ["line:before", "error:RPC_INVALID_UTF8", "line:after"]);
    assert.equal(errors[0]?.details.line, 2);
  }
});

Deno.test("NdjsonDecoder rejects a UTF-8 sequence cut by the line end", () => {
  // "é" is C3 A9; a line ending after C3 is invalid even though the next line has A9.
  const bytes = new Uint8Array([0x61, 0xc3, 0x0a, 0xa9, 0x62, 0x0a, 0x63, 0x0a]);
  const { events } = decode([bytes]);
  assert.deepEqual(events, ["error:RPC_INVALID_UTF8", "error:RPC_INVALID_UTF8", "line:c"]);
});

Deno.test("NdjsonDecoder accepts a literal U+FFFD as valid UTF-8", () => {
  const { lines, errors } = decode(['{"s":"\uFFFD"}\n', "x\uFFFD", "y\n"]);
  assert.deepEqual(lines, ['{"s":"\uFFFD"}', "x\uFFFDy"]);
  assert.equal(errors.length, 0);
});

Deno.test("NdjsonDecoder with fatal: false replaces invalid UTF-8 instead of skipping", () => {
  const decoder = new NdjsonDecoder({ fatal: false });
  const lines: string[] = [];
  decoder.push(new Uint8Array([0x61, 0xff, 0x62, 0x0a]), (l) => lines.push(l));
  assert.deepEqual(lines, ["a\uFFFDb"]);
});

Deno.test("NdjsonDecoder.end() reports a truncated final line", () => {
  const { lines, errors } = decode(["one\ntwo\nthr", "ee"]);
  assert.deepEqual(lines, ["one", "two"]);
  assert.deepEqual(codes(errors), ["RPC_TRUNCATED"]);
  assert.equal(errors[0]?.details.bytes, 5);
  assert.equal(errors[0]?.details.line, 3);
});

Deno.test("NdjsonDecoder.end() is silent after a final newline and leaves the decoder reusable", () => {
  const { errors, decoder } = decode(["one\n"]);
  assert.equal(errors.length, 0);
  const lines: string[] = [];
  decoder.push(enc.encode("again\n"), (l) => lines.push(l));
  decoder.end();
  assert.deepEqual(lines, ["again"]);
});

Deno.test("NdjsonDecoder throws the first error when no onError is given, then keeps decoding", () => {
  const decoder = new NdjsonDecoder({ maxLineBytes: 4 });
  const lines: string[] = [];
  assert.throws(
    () => decoder.push(enc.encode("abcdefgh\nok\n"), (l) => lines.push(l)),
    (e: unknown) => e instanceof RpcError && e.code === "RPC_LINE_TOO_LONG",
  );
  assert.deepEqual(lines, ["ok"]);
  decoder.push(enc.encode("ab"), (l) => lines.push(l));
  assert.throws(
    () => decoder.end(),
    (e: unknown) => e instanceof RpcError && e.code === "RPC_TRUNCATED",
  );
});

Deno.test("NdjsonDecoder copies a partial line, so the caller may reuse its chunk buffer", () => {
  const decoder = new NdjsonDecoder();
  const shared = new Uint8Array(8);
  const lines: string[] = [];
  shared.set(enc.encode("hel"));
  decoder.push(shared.subarray(0, 3), (l) => lines.push(l));
  shared.set(enc.encode("XXXXXXXX"));
  shared.set(enc.encode("lo\n"));
  decoder.push(shared.subarray(0, 3), (l) => lines.push(l));
  assert.deepEqual(lines, ["hello"]);
});

Deno.test("NdjsonDecoder stays on line boundaries when onLine throws", () => {
  const decoder = new NdjsonDecoder();
  assert.throws(
    () =>
      decoder.push(enc.encode("boom\nlost\npar"), () => {
        throw new Error("consumer failed");
      }),
    /consumer failed/,
  );
  const lines: string[] = [];
  decoder.push(enc.encode("tial\n"), (l) => lines.push(l));
  assert.deepEqual(lines, ["partial"]);
});

Deno.test("NdjsonDecoder handles lines larger than its initial buffer", () => {
  const big = "x".repeat(200_000);
  const bytes = enc.encode(`${big}\nsmall\n`);
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 65_536) chunks.push(bytes.subarray(i, i + 65_536));
  const { lines, errors } = decode(chunks);
  assert.equal(errors.length, 0);
  assert.equal(lines.length, 2);
  assert.equal(lines[0], big);
  assert.equal(lines[1], "small");
});

Deno.test("NdjsonDecoder keeps a byte order mark, so it cannot hide inside a line", () => {
  const { lines } = decode([new Uint8Array([0xef, 0xbb, 0xbf, 0x31, 0x0a])]);
  assert.deepEqual(lines, ["\ufeff1"]);
});

Deno.test("NdjsonDecoder rejects a maxLineBytes that is not a positive integer", () => {
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new NdjsonDecoder({ maxLineBytes: bad }), RangeError);
  }
  assert.equal(new NdjsonDecoder().maxLineBytes, DEFAULT_MAX_LINE_BYTES);
});

Deno.test("encodeMessage() writes exactly one JSON line ending in a newline", () => {
  const bytes = encodeMessage({ text: "multi\nline\r\n", n: 1 });
  const text = new TextDecoder().decode(bytes);
  assert.equal(text.indexOf("\n"), text.length - 1);
  assert.deepEqual(JSON.parse(text), { text: "multi\nline\r\n", n: 1 });
  assert.throws(() => encodeMessage(undefined), TypeError);
  assert.throws(() => encodeMessage({ n: 1n }), TypeError);
});
