/**
 * Network sandbox tests with real plugin processes. Network traffic goes only to loopback
 * listeners this file opens; the metadata address is checked through permission queries and
 * the compiled flags, never by connecting.
 */
import assert from "node:assert/strict";
import {
  addProbe,
  assertNotCapable,
  DIALER,
  flagValues,
  PROBE,
  refusal,
  sandboxHome,
  withCapabilities,
} from "./_sandbox.ts";

Deno.test("a plugin without a network grant cannot connect to loopback or the metadata address", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  await using home = await sandboxHome();
  await home.addPlugin(PROBE);
  await using host = await home.startHost();

  const message = await assertNotCapable(
    host.call("probe", "connect", { hostname: "127.0.0.1", port }),
  );
  assert.match(message, new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.equal(await host.call("probe", "netQuery", { host: `127.0.0.1:${port}` }), "denied");
  assert.equal(await host.call("probe", "netQuery", { host: "169.254.169.254:80" }), "denied");
  const argv = host.sandbox("probe")?.argv;
  assert.deepEqual(flagValues(argv, "--allow-net"), []);
  const deny = flagValues(argv, "--deny-net");
  assert.ok(deny.includes("127.0.0.0/8"), `--deny-net=${deny}`);
  assert.ok(deny.includes("169.254.0.0/16"), `--deny-net=${deny}`);
});

Deno.test("with allow_loopback a plugin connects to its granted port only, never to metadata", async () => {
  using granted = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using other = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using home = await sandboxHome({ security: { allow_loopback: true } });
  await addProbe(home, {
    network: { egress: [{ hosts: ["127.0.0.1"], ports: [granted.addr.port] }] },
  });
  await using host = await home.startHost();

  assert.equal(
    await host.call("probe", "connect", { hostname: "127.0.0.1", port: granted.addr.port }),
    true,
  );
  await assertNotCapable(
    host.call("probe", "connect", { hostname: "127.0.0.1", port: other.addr.port }),
  );
  // The grant names 127.0.0.1, not the name or the IPv6 loopback.
  await assertNotCapable(
    host.call("probe", "connect", { hostname: "localhost", port: granted.addr.port }),
  );
  await assertNotCapable(
    host.call("probe", "connect", { hostname: "::1", port: granted.addr.port }),
  );
  // Loopback is allowed by the admin, link-local and metadata are still denied.
  assert.equal(await host.call("probe", "netQuery", { host: "169.254.169.254:80" }), "denied");
  assert.equal(await host.call("probe", "netQuery", { host: "169.254.169.254" }), "denied");
  const argv = host.sandbox("probe")?.argv;
  assert.deepEqual(flagValues(argv, "--allow-net"), [`127.0.0.1:${granted.addr.port}`]);
  const deny = flagValues(argv, "--deny-net");
  assert.ok(deny.includes("169.254.0.0/16"), `--deny-net=${deny}`);
  assert.ok(!deny.includes("127.0.0.0/8"), `--deny-net=${deny}`);
});

/**
 * A host name other than `localhost` that /etc/hosts maps to 127.0.0.1 (such as the machine's
 * own name), or `undefined`. The compiler cannot know where a name resolves, so it accepts it.
 */
function loopbackAlias(): string | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync("/etc/hosts");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const [address, ...names] = line.replace(/#.*/, "").trim().split(/\s+/);
    if (address !== "127.0.0.1") continue;
    const name = names.find((n) => /^[a-z][a-z0-9-]*$/i.test(n) && !/localhost/i.test(n));
    if (name !== undefined) return name;
  }
  return undefined;
}

const LOOPBACK_ALIAS = loopbackAlias();

Deno.test({
  name: "a granted host name that resolves to loopback is still denied by the loopback ranges",
  ignore: LOOPBACK_ALIAS === undefined,
  async fn() {
    const alias = LOOPBACK_ALIAS!;
    // If the deny failed, the connection would reach this listener: loopback only.
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const { port } = listener.addr;
    await using home = await sandboxHome();
    await home.addPlugin(DIALER, {
      manifest: withCapabilities({ network: { egress: [{ hosts: [alias], ports: [port] }] } }),
    });
    await using host = await home.startHost();

    assert.equal(host.plugins()[0]?.state, "ready");
    assert.deepEqual(flagValues(host.sandbox("dialer")?.argv, "--allow-net"), [
      `${alias}:${port}`,
    ]);
    // Deno checks the resolved address against --deny-net too.
    const message = await assertNotCapable(
      host.call("dialer", "connect", { hostname: alias, port }),
    );
    assert.match(message, new RegExp(`127\\.0\\.0\\.1:${port}`));
  },
});

Deno.test("an egress grant to the cloud metadata address is refused before spawn", async () => {
  await using home = await sandboxHome();
  await addProbe(home, {
    network: { egress: [{ hosts: ["169.254.169.254"], ports: [80] }] },
  });
  await using host = await home.startHost();

  const error = await refusal(host, "probe");
  assert.equal(error.code, "GRANT_REFUSED");
  assert.equal(error.refusals[0]?.at, "capabilities.network.egress[0].hosts[0]");
  assert.match(error.message, /169\.254\.169\.254.*allow_link_local/);
});
