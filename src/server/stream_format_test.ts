import assert from "node:assert/strict";
import { streamFormat } from "./_stream_response.ts";

Deno.test("streamFormat() picks the first streaming type the Accept header names", () => {
  assert.equal(streamFormat(null), undefined);
  assert.equal(streamFormat("application/json"), undefined);
  assert.equal(streamFormat("*/*"), undefined);
  assert.equal(streamFormat("text/event-stream"), "sse");
  assert.equal(streamFormat("Text/Event-Stream; charset=utf-8"), "sse");
  assert.equal(streamFormat("application/x-ndjson"), "ndjson");
  assert.equal(streamFormat("application/json, application/x-ndjson;q=0.5"), "ndjson");
  assert.equal(streamFormat("application/x-ndjson, text/event-stream"), "ndjson");
  assert.equal(streamFormat("text/event-stream;q=0, application/x-ndjson"), "ndjson");
  assert.equal(streamFormat("text/event-stream; q=0.0"), undefined);
});
