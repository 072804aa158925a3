import assert from "node:assert/strict";
import { HttpError } from "./http_error.ts";
import { readJsonBody } from "./read_json_body.ts";

const URL_ = "http://127.0.0.1/v1/plugins/p/m";

function chunked(chunks: string[]): Request {
  const enc = new TextEncoder();
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < chunks.length) c.enqueue(enc.encode(chunks[i++]!));
      else c.close();
    },
  });
  return new Request(URL_, { method: "POST", body });
}

function rejectsWith(p: Promise<unknown>, status: number, code: string) {
  return assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof HttpError, String(e));
    assert.deepEqual([e.status, e.code], [status, code]);
    return true;
  });
}

Deno.test("readJsonBody() returns an object or array, and undefined for an empty body or null", async () => {
  const post = (body?: string) => new Request(URL_, { method: "POST", body });
  assert.deepEqual(await readJsonBody(post('{"a":1}'), { maxBytes: 100 }), { a: 1 });
  assert.deepEqual(await readJsonBody(post("[1,2]"), { maxBytes: 100 }), [1, 2]);
  assert.equal(await readJsonBody(post(), { maxBytes: 100 }), undefined);
  assert.equal(await readJsonBody(post("  \n"), { maxBytes: 100 }), undefined);
  assert.equal(await readJsonBody(post("null"), { maxBytes: 100 }), undefined);
  assert.deepEqual(await readJsonBody(chunked(['{"a":', '"b"}']), { maxBytes: 100 }), { a: "b" });
});

Deno.test("readJsonBody() refuses bad JSON, bad UTF-8 and params that are not structured", async () => {
  const post = (body: BodyInit) => new Request(URL_, { method: "POST", body });
  await rejectsWith(readJsonBody(post("{nope"), { maxBytes: 100 }), 400, "BAD_JSON");
  await rejectsWith(
    readJsonBody(post(new Uint8Array([0x7b, 0xff, 0x7d])), { maxBytes: 100 }),
    400,
    "BAD_JSON",
  );
  await rejectsWith(readJsonBody(post("42"), { maxBytes: 100 }), 400, "PARAMS_INVALID");
  await rejectsWith(readJsonBody(post('"s"'), { maxBytes: 100 }), 400, "PARAMS_INVALID");
});

Deno.test("readJsonBody() admits exactly maxBytes and refuses one byte more, declared or streamed", async () => {
  const exact = `[${"1,".repeat(48)}1]`; // 99 bytes
  assert.equal(exact.length, 99);
  const post = (body: string) =>
    new Request(URL_, {
      method: "POST",
      body,
      headers: { "content-length": String(new TextEncoder().encode(body).length) },
    });
  assert.equal((await readJsonBody(post(exact), { maxBytes: 99 }) as number[]).length, 49);
  await rejectsWith(readJsonBody(post(exact), { maxBytes: 98 }), 413, "BODY_TOO_LARGE");
  assert.equal(
    (await readJsonBody(chunked([exact.slice(0, 50), exact.slice(50)]), { maxBytes: 99 }) as [])
      .length,
    49,
  );
  await rejectsWith(
    readJsonBody(chunked([exact.slice(0, 50), exact.slice(50)]), { maxBytes: 98 }),
    413,
    "BODY_TOO_LARGE",
  );
});

Deno.test("readJsonBody() stops reading a streamed body as soon as it passes the limit", async () => {
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      pulled++;
      c.enqueue(new Uint8Array(1000).fill(0x20));
    },
  });
  const request = new Request(URL_, { method: "POST", body });
  await rejectsWith(readJsonBody(request, { maxBytes: 4096 }), 413, "BODY_TOO_LARGE");
  assert.ok(pulled <= 6, `pulled ${pulled} chunks of an endless body`);
});

Deno.test("readJsonBody() rejects with the signal's reason when it aborts mid-body", async () => {
  const body = new ReadableStream<Uint8Array>({ pull() {} }); // never sends anything
  const controller = new AbortController();
  const read = readJsonBody(new Request(URL_, { method: "POST", body }), {
    maxBytes: 100,
    signal: controller.signal,
  });
  const reason = new Error("gone");
  controller.abort(reason);
  await assert.rejects(read, (e) => e === reason);
});
