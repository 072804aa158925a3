import assert from "node:assert/strict";
import { StdoutWriter } from "./_stdout_writer.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("StdoutWriter writes what one tick sent in one write, at the end of the tick", async () => {
  const writes: string[] = [];
  const w = new StdoutWriter((bytes) => (writes.push(dec.decode(bytes)), bytes.length));
  w.send(enc.encode("a\n"));
  w.send(enc.encode("b\n"));
  assert.deepEqual(writes, []);
  await Promise.resolve();
  assert.deepEqual(writes, ["a\nb\n"]);
});

Deno.test("StdoutWriter writes 64 KiB at once, and loops over partial writes", () => {
  let written = 0;
  let calls = 0;
  const w = new StdoutWriter((bytes) => {
    calls++;
    const n = Math.min(bytes.length, 10_000); // a pipe that takes 10,000 bytes per write
    written += n;
    return n;
  });
  w.send(new Uint8Array(64 * 1024));
  assert.equal(written, 64 * 1024);
  assert.equal(calls, 7);
});

Deno.test("StdoutWriter drops output once stdout is gone, without throwing out of the tick", async () => {
  let calls = 0;
  const w = new StdoutWriter(() => {
    calls++;
    throw new Error("broken pipe");
  });
  w.send(enc.encode("x\n"));
  await Promise.resolve();
  w.send(enc.encode("y\n"));
  await Promise.resolve();
  assert.equal(calls, 1);
});
