import assert from "node:assert/strict";
import { compile, DENY_ALL, egress, flag, makeHost } from "./_testing.ts";

// ------------------------------------------------------------------------------- network

Deno.test("compileSandbox() turns egress hosts x ports into one sorted --allow-net", async () => {
  await using host = await makeHost();
  const c = await compile(host, {
    capabilities: {
      network: {
        egress: [
          { hosts: ["API.Example.com", "192.0.2.10"], ports: [443, 80] },
          { hosts: ["2001:db8::1", "[2001:DB8::2]", "api.example.com."], ports: [443] },
        ],
      },
    },
  });
  assert.deepEqual(c.refusals, []);
  const expected = [
    "192.0.2.10:443",
    "192.0.2.10:80",
    "[2001:db8::1]:443",
    "[2001:db8::2]:443",
    "api.example.com:443",
    "api.example.com:80",
  ];
  assert.deepEqual(c.grants.net, expected);
  assert.equal(flag(c, "--allow-net"), expected.join(","));
  assert.equal(c.argv.filter((a) => a.startsWith("--allow-net=")).length, 1);
  assert.ok(!c.argv.includes("--unstable-net"));
});

Deno.test("compileSandbox() refuses invalid egress hosts", async (t) => {
  await using host = await makeHost();
  const bad = [
    "*.example.com",
    "*",
    "a,b.com",
    "http://x.com",
    "user@x.com",
    "a b.com",
    "x.com/p",
    "127.1",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "0x7f000001",
    "api.example.com:443",
    "2130706433",
    "256.1.1.1",
    "-bad.com",
    "ex_ample.com",
    "fe80::1%eth0",
    "bücher.de",
    "[::1",
    "1:2:3:4:5:6:7:8:9",
  ];
  for (const h of bad) {
    await t.step(h, async () => {
      const c = await compile(host, egress(["ok.example.com", h]));
      assert.deepEqual(c.refusals.map((r) => r.at), ["capabilities.network.egress[0].hosts[1]"]);
      assert.deepEqual(c.grants.net, ["ok.example.com:443"]);
    });
  }
});

Deno.test("compileSandbox() refuses loopback egress unless security.allow_loopback", async (t) => {
  await using host = await makeHost();
  const hosts = [
    "localhost",
    "db.localhost",
    "LOCALHOST.",
    "127.0.0.1",
    "127.5.6.7",
    "0.0.0.0",
    "::1",
    "[::1]",
    "::",
    "::ffff:127.0.0.1",
    "::127.0.0.1",
    "64:ff9b::7f00:1",
  ];
  for (const h of hosts) {
    await t.step(`${h} refused`, async () => {
      const c = await compile(host, egress([h], [8080]));
      assert.equal(c.refusals.length, 1);
      assert.match(c.refusals[0]!.reason, /loopback.*allow_loopback: true/);
      assert.equal(flag(c, "--allow-net"), undefined);
      assert.match(flag(c, "--deny-net")!, /127\.0\.0\.0\/8/);
    });
  }
  await t.step("allowed, and the loopback deny ranges are dropped", async () => {
    const c = await compile(host, egress(["localhost", "127.0.0.1", "::1"], [8080]), {
      security: { allow_loopback: true },
    });
    assert.deepEqual(c.refusals, []);
    assert.deepEqual(c.grants.net, ["127.0.0.1:8080", "[::1]:8080", "localhost:8080"]);
    assert.equal(flag(c, "--deny-net"), "100.100.100.200,169.254.0.0/16,[fd00:ec2::254]");
  });
});

Deno.test("compileSandbox() refuses link-local and metadata egress unless security.allow_link_local", async (t) => {
  await using host = await makeHost();
  const hosts = [
    "169.254.169.254",
    "169.254.1.1",
    "fe80::1",
    "febf::1",
    "fd00:ec2::254",
    "metadata.google.internal",
    "metadata",
    "::ffff:169.254.169.254",
    "100.100.100.200",
    "64:ff9b::a9fe:a9fe",
  ];
  for (const h of hosts) {
    await t.step(`${h} refused`, async () => {
      const c = await compile(host, egress([h], [80]));
      assert.equal(c.refusals.length, 1);
      assert.match(c.refusals[0]!.reason, /(link-local|metadata).*allow_link_local: true/);
    });
  }
  await t.step("allowed, and the link-local deny ranges are dropped", async () => {
    const c = await compile(host, egress(["169.254.169.254", "fe80::1"], [80]), {
      security: { allow_link_local: true },
    });
    assert.deepEqual(c.refusals, []);
    assert.deepEqual(c.grants.net, ["169.254.169.254:80", "[fe80::1]:80"]);
    assert.equal(flag(c, "--deny-net"), "0.0.0.0/8,127.0.0.0/8,[::1],[::]");
  });
  await t.step("both allowed: no --deny-net at all", async () => {
    const c = await compile(host, {}, {
      security: { allow_link_local: true, allow_loopback: true },
    });
    assert.equal(flag(c, "--deny-net"), undefined);
  });
});

Deno.test("compileSandbox() emits --deny-net even without egress grants", async () => {
  await using host = await makeHost();
  const c = await compile(host, {});
  assert.ok(c.argv.includes(DENY_ALL));
  assert.equal(flag(c, "--allow-net"), undefined);
});

Deno.test("compileSandbox() adds --unstable-net for udp, egress or ingress", async (t) => {
  await using host = await makeHost();
  await t.step("udp egress", async () => {
    const c = await compile(host, egress(["dns.example.com"], [53], "udp"));
    assert.ok(c.argv.includes("--unstable-net"));
  });
  await t.step("udp ingress", async () => {
    const c = await compile(host, {
      capabilities: { network: { ingress: [{ protocol: "udp", ports: [5353] }] } },
    });
    assert.ok(c.argv.includes("--unstable-net"));
  });
  await t.step("tcp only", async () => {
    const c = await compile(host, egress(["api.example.com"]));
    assert.ok(!c.argv.includes("--unstable-net"));
  });
});

Deno.test("compileSandbox() grants ingress ports as 0.0.0.0:<port>", async () => {
  await using host = await makeHost();
  const c = await compile(host, {
    capabilities: {
      network: {
        ingress: [{ ports: [9000, 9001] }],
        egress: [{ hosts: ["a.example.com"], ports: [443] }],
      },
    },
  });
  assert.equal(flag(c, "--allow-net"), "0.0.0.0:9000,0.0.0.0:9001,a.example.com:443");
});

Deno.test("compileSandbox() refuses ingress allowed_origins (strict) and warns (permissive)", async (t) => {
  await using host = await makeHost();
  const manifest = {
    capabilities: {
      network: { ingress: [{ ports: [9000], allowed_origins: ["https://a.example"] }] },
    },
  };
  await t.step("strict", async () => {
    const c = await compile(host, manifest);
    assert.deepEqual(c.refusals.map((r) => r.at), [
      "capabilities.network.ingress[0].allowed_origins",
    ]);
    assert.match(c.refusals[0]!.reason, /cannot restrict peers by origin/);
  });
  await t.step("permissive", async () => {
    const c = await compile(host, manifest, { security: { policy: "permissive" } });
    assert.deepEqual(c.refusals, []);
    assert.match(c.warnings.join("\n"), /Deno cannot restrict peers by origin/);
    assert.deepEqual(c.grants.net, ["0.0.0.0:9000"]);
  });
});
