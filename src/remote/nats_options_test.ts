import assert from "node:assert/strict";
import { ConfigSchema } from "../config/mod.ts";
import {
  checkNatsSecurity,
  checkServerRequiresAuth,
  checkWorkerSecurity,
  hasAuth,
  isLoopback,
  natsConnectOptions,
  redactUrl,
  serverHosts,
  urlCredentials,
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

Deno.test("checkNatsSecurity() refuses a host an unauthenticated non-loopback server, naming the risk", () => {
  assert.throws(
    () => checkNatsSecurity(nats({ servers: ["nats://192.0.2.10:4222"] }), { role: "host" }),
    (e: RemoteError) =>
      e.code === "REMOTE_INSECURE" && /send remote plugin calls/.test(e.message) &&
      /192\.0\.2\.10/.test(e.message),
  );
  checkNatsSecurity(nats({ servers: ["nats://192.0.2.10:4222"], token: "t" }), { role: "host" });
  assert.throws(
    () =>
      checkServerRequiresAuth(nats({ servers: ["nats://10.0.0.5:4222"], token: "t" }), {
        host: "10.0.0.5",
        authRequired: false,
      }, { role: "host" }),
    (e: RemoteError) => e.code === "REMOTE_INSECURE" && /accepted this host/.test(e.message),
  );
});

Deno.test("redactUrl() hides passwords and tokens in server urls, also in urls that do not parse", () => {
  assert.equal(redactUrl("nats://alice:s3cret@127.0.0.1:1"), "nats://alice:***@127.0.0.1:1");
  assert.equal(redactUrl("nats://tok3n@10.0.0.5"), "nats://***@10.0.0.5");
  assert.equal(redactUrl("alice:p@ss@host:4222"), "alice:***@host:4222");
  assert.equal(redactUrl("nats://a b:s3cret@h"), "nats://a b:***@h");
  assert.equal(redactUrl("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
});

Deno.test("credentials in a server url count as authentication and are sent as user/pass or token", () => {
  assert.deepEqual(urlCredentials("nats://alice:s3%40cret@10.0.0.5:4222"), {
    user: "alice",
    pass: "s3@cret",
  });
  assert.deepEqual(urlCredentials("tok3n@10.0.0.5"), { token: "tok3n" });
  assert.equal(urlCredentials("nats://10.0.0.5"), undefined);
  const withPass = nats({ servers: ["nats://alice:s3cret@10.0.0.5:4222"] });
  const withToken = nats({ servers: ["nats://tok3n@10.0.0.5:4222"] });
  assert.ok(hasAuth(withPass) && hasAuth(withToken));
  assert.ok(!hasAuth(nats({ servers: ["nats://10.0.0.5:4222"] })));
  checkWorkerSecurity(withPass);
  checkNatsSecurity(withToken, { role: "host" });
  const o = natsConnectOptions(withPass, { baseDir: "/", name: "t" });
  assert.deepEqual(o.servers, ["nats://10.0.0.5:4222"]);
  assert.equal(o.user, "alice");
  assert.equal(o.pass, "s3cret");
  const t = natsConnectOptions(withToken, { baseDir: "/", name: "t" });
  assert.deepEqual([t.servers, t.token], [["nats://10.0.0.5:4222"], "tok3n"]);
});

Deno.test("natsConnectOptions() refuses url credentials that differ, or repeat remote.nats.token", () => {
  for (
    const cfg of [
      { servers: ["nats://a:s3cret@10.0.0.5", "nats://b:0ther@10.0.0.6"] },
      { servers: ["nats://a:s3cret@10.0.0.5"], token: "t" },
    ]
  ) {
    assert.throws(
      () => natsConnectOptions(nats(cfg), { baseDir: "/", name: "t" }),
      (e: RemoteError) =>
        e.code === "REMOTE_CONFIG" && !e.message.includes("s3cret") && /a:\*\*\*@/.test(e.message),
    );
  }
});

Deno.test("a server that is not a url is REMOTE_CONFIG naming it (password hidden), not a TypeError", () => {
  for (const bad of ["nats://a b:4222", "nats://u:s3cret@a b:4222"]) {
    assert.throws(
      // As `serve --nats` gives it: past the config schema.
      () => checkWorkerSecurity({ ...nats({ allow_unauthenticated: true }), servers: [bad] }),
      (e: RemoteError) =>
        e instanceof RemoteError && e.code === "REMOTE_CONFIG" && e.message.includes("a b:4222") &&
        !e.message.includes("s3cret") && e.cause === undefined,
    );
  }
});

Deno.test("the config schema refuses a remote.nats.servers entry that is not a url, without echoing it", () => {
  const r = ConfigSchema.safeParse({
    remote: { nats: { servers: ["nats://127.0.0.1:4222", "nats://u:s3cret@a b:4222"] } },
  });
  assert.ok(!r.success);
  const issue = r.error.issues[0]!;
  assert.deepEqual(issue.path, ["remote", "nats", "servers", 1]);
  assert.match(issue.message, /not a NATS url/);
  assert.ok(!JSON.stringify(r.error.issues).includes("s3cret"));
});
