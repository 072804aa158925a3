import assert from "node:assert/strict";
import { TokenBucket } from "./token_bucket.ts";

Deno.test("TokenBucket admits the burst, then the rate, and says when the next token comes", () => {
  let now = 0;
  const bucket = new TokenBucket(10, 3, () => now);
  assert.deepEqual([1, 2, 3, 4].map(() => bucket.take()), [true, true, true, false]);
  assert.equal(bucket.retryAfterMs(), 100);
  now = 50;
  assert.equal(bucket.take(), false);
  assert.equal(bucket.retryAfterMs(), 50);
  now = 100;
  assert.equal(bucket.take(), true);
  assert.equal(bucket.take(), false);
  now = 10_000; // refills up to the burst, not beyond
  assert.deepEqual([1, 2, 3, 4].map(() => bucket.take()), [true, true, true, false]);
});

Deno.test("TokenBucket refuses a rate or burst out of range", () => {
  assert.throws(() => new TokenBucket(0, 1), RangeError);
  assert.throws(() => new TokenBucket(1, 0.5), RangeError);
  assert.throws(() => new TokenBucket(Infinity, 1), RangeError);
});
