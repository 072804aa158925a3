/**
 * The gateway over HTTPS (`server.tls`) with a self-signed certificate made here with the
 * `openssl` CLI: calls over HTTPS trusting that certificate, plain HTTP refused, `run` printing
 * an `https://` URL that `plugins list` reaches, and every bad `server.tls` refused with the file
 * named.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { ConfigError, resolveConfig } from "../src/config/mod.ts";
import { Gateway, ServerError } from "../src/server/mod.ts";
import { cliOk, FIXTURE_PLUGINS, makeHome, readUntil, SAMPLE_PLUGINS } from "./_helpers.ts";

const TLS = { cert: "tls/cert.pem", key: "tls/key.pem" };

/** Runs `openssl` with `args` in `cwd`; fails naming it when it is not installed. */
async function openssl(cwd: string, args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
      .output();
  } catch (e) {
    throw new Error(
      "this test needs the openssl CLI to make a self-signed certificate, and none is on PATH " +
        `(install openssl): ${e}`,
    );
  }
  assert.ok(out.success, `openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/**
 * Writes `tls/cert.pem` (self-signed, for 127.0.0.1 and localhost) and `tls/key.pem` in `dir`,
 * and `tls/other_key.pem`, a key that does not match. Returns the certificate's PEM.
 */
async function makeCert(dir: string): Promise<string> {
  const tls = join(dir, "tls");
  await Deno.mkdir(tls);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(tls, [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "key.pem",
    "-out",
    "cert.pem",
    "-days",
    "2",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1,DNS:localhost",
    // rustls refuses a CA certificate as the server's own (CaUsedAsEndEntity).
    "-addext",
    "basicConstraints=critical,CA:FALSE",
  ]);
  await openssl(tls, [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-out",
    "other_key.pem",
  ]);
  return await Deno.readTextFile(join(tls, "cert.pem"));
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

Deno.test("the gateway serves plugin calls over HTTPS with server.tls and refuses plain HTTP", async () => {
  await using home = await makeHome({ watcher: { enabled: false }, server: { tls: TLS } });
  const pem = await makeCert(home.dir);
  await home.addPlugin(join(FIXTURE_PLUGINS, "behave"));
  await using host = await home.startHost();
  // Relative to the config file's folder, like every other path.
  assert.deepEqual(host.config.server.tls, {
    cert: join(home.dir, "tls/cert.pem"),
    key: join(home.dir, "tls/key.pem"),
  });
  await using gateway = await Gateway.start(host, { listen: "127.0.0.1:0" });
  assert.match(gateway.url, /^https:\/\/127\.0\.0\.1:\d+$/);

  using client = Deno.createHttpClient({ caCerts: [pem] });
  const res = await fetch(`${gateway.url}/v1/plugins/behave/echo`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ n: 1 }),
    client,
  });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { result: { n: 1 } });

  // Without the certificate trusted, a client refuses it.
  await assert.rejects(fetch(`${gateway.url}/healthz`, { signal: AbortSignal.timeout(5000) }));
  // Plain HTTP to the same port gets no answer.
  await assert.rejects(
    fetch(`http://127.0.0.1:${gateway.addr.port}/healthz`, { signal: AbortSignal.timeout(5000) }),
  );
});

Deno.test("Gateway.start() refuses a missing, non-PEM or mismatched server.tls file, naming it", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await makeCert(home.dir);
  await using host = await home.startHost();
  const cert = join(home.dir, "tls/cert.pem");
  const cases: [string, { cert: string; key: string }, RegExp][] = [
    [
      "missing key",
      { cert, key: join(home.dir, "tls/nope.pem") },
      /server\.tls\.key .*nope\.pem: no such file/,
    ],
    [
      "missing cert",
      { cert: join(home.dir, "nocert.pem"), key: cert },
      /server\.tls\.cert .*nocert\.pem: no such file/,
    ],
    [
      "a key that is a certificate",
      { cert, key: cert },
      /server\.tls\.key .*cert\.pem is not a PEM private key/,
    ],
    ["a cert that is a key", {
      cert: join(home.dir, "tls/key.pem"),
      key: join(home.dir, "tls/key.pem"),
    }, /server\.tls\.cert .*key\.pem is not a PEM certificate/],
    [
      "a key that does not match",
      { cert, key: join(home.dir, "tls/other_key.pem") },
      /other_key\.pem: the key does not belong to the certificate/,
    ],
  ];
  for (const [what, tls, message] of cases) {
    await assert.rejects(Gateway.start(host, { listen: "127.0.0.1:0", tls }), (e: unknown) => {
      assert.ok(e instanceof ServerError, `${what}: ${e}`);
      assert.equal(e.code, "SERVER_TLS", what);
      assert.match(e.message, message, what);
      return true;
    }, what);
  }
  // TLS does not lift the token rule.
  await assert.rejects(
    Gateway.start(host, { listen: "0.0.0.0:0", tls: { cert, key: join(home.dir, "tls/key.pem") } }),
    (e: unknown) => e instanceof ServerError && e.code === "SERVER_INSECURE",
  );
});

Deno.test("server.tls needs both cert and key", () => {
  for (const tls of [{ cert: "c.pem" }, { key: "k.pem" }]) {
    assert.throws(
      () => resolveConfig({ server: { tls } }),
      (e: unknown) => e instanceof ConfigError && /server\.tls\.(cert|key)/.test(e.message),
      JSON.stringify(tls),
    );
  }
});

Deno.test("`run` with a bad server.tls.key exits 2 with the file named and no stack trace", async () => {
  await using home = await makeHome({
    server: {
      enabled: true,
      listen: "127.0.0.1:0",
      tls: { cert: TLS.cert, key: "tls/missing.pem" },
    },
  });
  await makeCert(home.dir);
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  const io = memoryIo();
  const code = await runCli(["--config", home.configPath, "run"], io);
  assert.equal(code, 2, io.stderr);
  assert.match(
    io.stderr,
    new RegExp(
      `^error \\[SERVER_TLS\\]: cannot read server\\.tls\\.key ${
        join(home.dir, "tls/missing.pem")
      }: no such file`,
    ),
  );
  assert.doesNotMatch(io.stderr, /\n\s+at /);
});

Deno.test("`run` prints an https:// gateway that `plugins list` reaches, trusting server.tls.cert", async () => {
  const port = freePort();
  await using home = await makeHome({
    watcher: { enabled: false },
    server: { enabled: true, listen: `127.0.0.1:${port}`, tls: TLS },
  });
  await makeCert(home.dir);
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  const child = home.spawnRun();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  let out = "";
  try {
    out = await readUntil(reader);
    assert.ok(out.includes(`HTTP gateway: https://127.0.0.1:${port} `), out);
    const io = await cliOk(["--config", home.configPath, "plugins", "list"]);
    assert.match(io.stdout, /^cat\s+\S+\s+valid\s+ready\s+healthy\s/m);
    assert.doesNotMatch(io.stdout, /none answered/);
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
    try {
      child.kill("SIGINT");
    } catch { /* gone */ }
    await child.status;
    await stderr.catch(() => "");
  }
});
