import assert from "node:assert/strict";
import type { PluginEndpoint } from "../runtime/mod.ts";
import { InstanceSet, MAX_HEALTH_MESSAGE } from "./instance_set.ts";
import type { PluginPolicy } from "./policy.ts";

/** An endpoint that is ready and answers `$/health` with what `answer` gives. */
function endpoint(answer: () => Promise<unknown>): PluginEndpoint & { recycled: string[] } {
  const recycled: string[] = [];
  return {
    state: "ready",
    incarnation: 1,
    restarts: 0,
    recycled,
    whenReady: () => Promise.resolve(),
    call: () => Promise.resolve(null),
    notify() {},
    health: () => answer() as ReturnType<PluginEndpoint["health"]>,
    recycle: (reason: string) => {
      recycled.push(reason);
      return Promise.resolve();
    },
    stop: () => Promise.resolve(),
  } as unknown as PluginEndpoint & { recycled: string[] };
}

const policy = {
  plugin: "p",
  bulkhead: { max_in_flight: 4, queue: 4 },
  health: { interval_ms: 60_000, timeout_ms: 1_000, failure_limit: 1 },
} as unknown as PluginPolicy;

Deno.test("InstanceSet clips a plugin's long health message where it is received", async () => {
  const big = "D".repeat(8_000_000);
  for (const status of ["degraded", "unhealthy"]) {
    const ep = endpoint(() => Promise.resolve({ status, message: big }));
    const set = new InstanceSet({ plugin: "p", endpoints: [ep], policy });
    await set.checkHealth();
    const message = set.instances[0]!.healthMessage!;
    assert.ok(message.length <= MAX_HEALTH_MESSAGE, `${message.length}`);
    assert.match(message, /^D+ …\[truncated, 8000000 characters in all\]$/);
    if (status === "unhealthy") assert.ok(ep.recycled[0]!.length < MAX_HEALTH_MESSAGE + 200);
  }
});

Deno.test("InstanceSet clips a health error's message and quotes an odd answer briefly", async () => {
  const failing = endpoint(() => Promise.reject(new Error("E".repeat(1_000_000))));
  const set = new InstanceSet({ plugin: "p", endpoints: [failing], policy });
  await set.checkHealth();
  assert.ok(set.instances[0]!.healthMessage!.length <= MAX_HEALTH_MESSAGE);
  const odd = endpoint(() => Promise.resolve({ status: "weird", extra: "x".repeat(1_000_000) }));
  const set2 = new InstanceSet({ plugin: "p", endpoints: [odd], policy });
  await set2.checkHealth();
  assert.equal(set2.instances[0]!.healthMessage, "it answered $/health with a big JSON object");
  const short = endpoint(() => Promise.resolve({ status: "degraded", message: "slow disk" }));
  const set3 = new InstanceSet({ plugin: "p", endpoints: [short], policy });
  await set3.checkHealth();
  assert.equal(set3.instances[0]!.healthMessage, "slow disk");
});
