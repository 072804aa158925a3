import assert from "node:assert/strict";
import { ConfigSchema } from "../config/mod.ts";
import {
  checkServerRequiresAuth,
  checkWorkerSecurity,
  isLoopback,
  serverHosts,
} from "./nats_options.ts";
import { RemoteError } from "./remote_error.ts";

const nats = (extra: Record<string, unknown>) =>
  ConfigSchema.parse({ remote: { nats: extra } }).remote.nats;

Deno.test("serverHosts() reads hosts from urls with and without a scheme", () => {
  assert.deepEqual(
    serverHosts(["nats://10.0.0.5:4222", "127.0.0.1:4222", "tls://[::1]:1", "host"]),
    [
      "10.0.0.5",
      "127.0.0.1",
      "::1",
      "host",
    ],
  );
  assert.ok(isLoopback("127.0.0.1") && isLoopback("localhost") && isLoopback("::1"));
  assert.ok(!isLoopback("10.0.0.1"));
});

Deno.test("checkWorkerSecurity() refuses an unauthenticated non-loopback server", () => {
  assert.throws(
    () => checkWorkerSecurity(nats({ servers: ["nats://10.0.0.5:4222"] })),
    (e: RemoteError) => e.code === "REMOTE_INSECURE",
  );
  assert.throws(
    () => checkWorkerSecurity(nats({ servers: [] })),
    (e: RemoteError) => e.code === "REMOTE_CONFIG",
  );
});

Deno.test("checkWorkerSecurity() accepts loopback, credentials, or an explicit opt-in", () => {
  checkWorkerSecurity(nats({ servers: ["nats://127.0.0.1:4222"] }));
  checkWorkerSecurity(nats({ servers: ["nats://10.0.0.5:4222"], token: "s3cret" }));
  checkWorkerSecurity(nats({ servers: ["nats://10.0.0.5:4222"], user: "u", pass: "p" }));
  checkWorkerSecurity(nats({ servers: ["nats://10.0.0.5:4222"], allow_unauthenticated: true }));
});

Deno.test("checkServerRequiresAuth() refuses a non-loopback server that asked for no credentials", () => {
  const cfg = nats({ servers: ["nats://10.0.0.5:4222"], token: "s3cret" });
  assert.throws(
    () => checkServerRequiresAuth(cfg, { host: "10.0.0.5", authRequired: false }),
    (e: RemoteError) => e.code === "REMOTE_INSECURE",
  );
  checkServerRequiresAuth(cfg, { host: "10.0.0.5", authRequired: true });
  checkServerRequiresAuth(cfg, { host: "127.0.0.1", authRequired: false });
});
