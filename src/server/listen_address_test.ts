import assert from "node:assert/strict";
import { hostOfHeader, isLoopbackHost, parseListenAddress } from "./listen_address.ts";

Deno.test("parseListenAddress() reads IPv4, names and bracketed IPv6, and port 0", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:0"), {
    hostname: "127.0.0.1",
    port: 0,
    loopback: true,
  });
  assert.deepEqual(parseListenAddress("[::1]:8787"), {
    hostname: "::1",
    port: 8787,
    loopback: true,
  });
  assert.deepEqual(parseListenAddress("0.0.0.0:80"), {
    hostname: "0.0.0.0",
    port: 80,
    loopback: false,
  });
  assert.equal(parseListenAddress("localhost:1").loopback, true);
});

Deno.test("parseListenAddress() refuses a missing port and a port above 65535", () => {
  assert.throws(() => parseListenAddress("127.0.0.1"), RangeError);
  assert.throws(() => parseListenAddress("127.0.0.1:65536"), /invalid port 65536/);
  assert.throws(() => parseListenAddress("::1:80"), RangeError);
});

Deno.test("isLoopbackHost() accepts only addresses of this machine", () => {
  for (
    const h of [
      "127.0.0.1",
      "127.1.2.3",
      "localhost",
      "LOCALHOST",
      "a.localhost",
      "::1",
      "[::1]",
      "0:0:0:0:0:0:0:1",
      "::ffff:127.0.0.1",
    ]
  ) {
    assert.equal(isLoopbackHost(h), true, h);
  }
  for (
    const h of [
      "0.0.0.0",
      "::",
      "10.0.0.1",
      "192.168.1.1",
      "127.0.0.256",
      "localhost.evil.com",
      "evil.example",
      "::2",
      "::ffff:10.0.0.1",
      "128.0.0.1",
    ]
  ) {
    assert.equal(isLoopbackHost(h), false, h);
  }
});

Deno.test("hostOfHeader() strips the port and brackets and refuses malformed values", () => {
  assert.equal(hostOfHeader("127.0.0.1:8787"), "127.0.0.1");
  assert.equal(hostOfHeader("[::1]:8787"), "::1");
  assert.equal(hostOfHeader("Localhost"), "localhost");
  assert.equal(hostOfHeader("a b"), undefined);
  assert.equal(hostOfHeader("evil.example:80:80"), undefined);
});
