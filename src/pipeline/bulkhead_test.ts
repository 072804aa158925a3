import assert from "node:assert/strict";
import { Bulkhead } from "./bulkhead.ts";

Deno.test("Bulkhead runs max_in_flight, queues in order up to its queue, refuses the next", async () => {
  const b = new Bulkhead(1, 2);
  assert.equal(b.tryAcquire(), true);
  const order: string[] = [];
  const second = b.acquire().then((ok) => order.push(`second ${ok}`));
  const third = b.acquire().then((ok) => order.push(`third ${ok}`));
  assert.equal(await b.acquire(), false, "the queue is full");
  assert.equal(b.waiting, 2);
  b.release();
  await second;
  b.release();
  await third;
  assert.deepEqual(order, ["second true", "third true"]);
  b.release();
  assert.equal(b.active, 0);
});

Deno.test("Bulkhead: a waiting call whose signal aborts leaves the queue at once", async () => {
  const b = new Bulkhead(1, 1);
  b.tryAcquire();
  const controller = new AbortController();
  const waiting = b.acquire(controller.signal);
  controller.abort(new Error("deadline"));
  await assert.rejects(waiting, /deadline/);
  assert.equal(b.waiting, 0);
  // Its place is free for a live call.
  const next = b.acquire();
  b.release();
  assert.equal(await next, true);
  assert.equal(b.active, 1);
});

Deno.test("Bulkhead refuses bad sizes", () => {
  assert.throws(() => new Bulkhead(0, 1), RangeError);
  assert.throws(() => new Bulkhead(1, -1), RangeError);
});
