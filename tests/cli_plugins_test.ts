/**
 * The plugin commands of the CLI, run in-process with real plugin processes: `call`,
 * `plugins list`, `plugins inspect` and `run`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { memoryIo, runCli } from "../src/cli/mod.ts";
import { DEFAULT_HANDSHAKE } from "../src/sdk/mod.ts";
import {
  cliOk,
  FIXTURE_PLUGINS,
  makeHome,
  pidAlive,
  readUntil,
  SAMPLE_PLUGINS,
  waitFor,
} from "./_helpers.ts";

const SECRET = "s3cr3t-token-value-0042";

/** `promise`'s value, or `"timed out"` after `ms`, so a hang fails the test instead. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | "timed out"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<"timed out">((r) => (timer = setTimeout(() => r("timed out"), ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A home with cat (given a secret env value), dog and behave; with `broken`, also a plugin
 * folder whose manifest is invalid (the host logs it on stderr, so only where needed).
 */
async function cliHome(options: { broken?: boolean } = {}) {
  const home = await makeHome({ plugins: { cat: { env: { CAT_TOKEN: SECRET } } } });
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"), {
    manifest: (text) => text + "capabilities:\n  env: [CAT_TOKEN]\n",
  });
  await home.addPlugin(join(SAMPLE_PLUGINS, "dog"));
  await home.addPlugin(join(FIXTURE_PLUGINS, "behave"));
  if (options.broken) {
    // Line 4 has a version that is not semver.
    await home.addPlugin(join(FIXTURE_PLUGINS, "behave"), {
      as: "broken",
      manifest: (text) => text.replace(/^(\s*version:\s*).*$/m, "$1one"),
    });
  }
  return home;
}

Deno.test("`call cat speak` prints the JSON result and exits 0", async () => {
  await using home = await cliHome();
  const io = memoryIo();
  const code = await runCli(
    ["--config", home.configPath, "call", "cat", "speak", '{"loud":true}'],
    io,
  );
  assert.equal(code, 0, io.stderr);
  assert.deepEqual(JSON.parse(io.stdout), { sound: "MEOW!" });
  assert.equal(io.stderr, "");
});

Deno.test("`call` with params that are not JSON exits 2 and says so", async () => {
  await using home = await cliHome();
  const io = memoryIo();
  const code = await runCli(
    ["--config", home.configPath, "call", "cat", "speak", "{loud:true}"],
    io,
  );
  assert.equal(code, 2);
  assert.match(io.stderr, /^error \[USAGE\]: params must be JSON/);
  assert.equal(io.stdout, "");
});

Deno.test("`call` of an unknown plugin exits 2 and lists the known ones", async () => {
  await using home = await cliHome();
  const io = memoryIo();
  const code = await runCli(["--config", home.configPath, "call", "lion", "roar"], io);
  assert.equal(code, 2, io.stderr);
  assert.match(io.stderr, /^error \[PLUGIN_NOT_FOUND\]: no plugin named lion; known plugins: /);
  assert.match(io.stderr, /\bcat\b/);
  assert.equal(io.stdout, "");
});

Deno.test("`call` of an unknown method exits 2 and lists the plugin's methods", async () => {
  await using home = await cliHome();
  const io = memoryIo();
  const code = await runCli(["--config", home.configPath, "call", "cat", "purr"], io);
  assert.equal(code, 2, io.stderr);
  assert.match(io.stderr, /^error \[METHOD_NOT_FOUND\]: plugin cat has no method purr; .*speak/);
});

Deno.test("`call` of a plugin whose grant is refused exits 2 and says which grant and why", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"), {
    manifest: (text) =>
      text + "capabilities:\n  filesystem:\n    - { path: /, permissions: [read] }\n",
  });
  const io = memoryIo();
  const code = await runCli(["--config", home.configPath, "call", "cat", "speak"], io);
  assert.equal(code, 2, io.stderr);
  assert.match(io.stderr, /^error \[PLUGIN_UNAVAILABLE\]: plugin cat is failed: .*refused/);
  assert.match(io.stderr, /capabilities\.filesystem/);
  assert.equal(io.stdout, "");
});

Deno.test("`call --timeout 100` of a slow method exits 1 with a PLUGIN_TIMEOUT error line", async () => {
  await using home = await cliHome();
  const io = memoryIo();
  const started = performance.now();
  const code = await runCli(
    ["--config", home.configPath, "call", "behave", "sleep", '{"ms":5000}', "--timeout", "100"],
    io,
  );
  const elapsed = performance.now() - started;
  assert.equal(code, 1, io.stderr);
  assert.equal(io.stdout, "");
  const lines = io.stderr.split("\n").filter((l) => l !== "");
  const errorLines = lines.filter((l) => l.includes("PLUGIN_TIMEOUT"));
  assert.equal(errorLines.length, 1, io.stderr);
  assert.match(lines[0]!, /^error \[PLUGIN_TIMEOUT\]: behave\.sleep did not answer within 100 ms/);
  // It did not wait for the 5 s sleep.
  assert.ok(elapsed < 4500, `took ${elapsed} ms`);
});

Deno.test("`plugins list` shows valid plugins and an invalid one with file:line and reason", async () => {
  await using home = await cliHome({ broken: true });
  const io = memoryIo();
  const code = await runCli(["--config", home.configPath, "plugins", "list"], io);
  assert.equal(code, 0, io.stderr);
  const rows = io.stdout.split("\n");
  assert.match(
    rows[0]!,
    /^NAME\s+VERSION\s+STATUS\s+STATE\s+HEALTH\s+FOLDER\s+DESCRIPTION \/ REASON$/,
  );
  // No host is running: state and health are unknown, and the table says why.
  assert.match(io.stdout, /none answered/);
  for (const name of ["behave", "cat", "dog"]) {
    assert.ok(
      rows.some((r) => new RegExp(`^${name}\\s+\\d+\\.\\d+\\.\\d+\\s+valid\\s+-\\s+-\\s`).test(r)),
      `${name} is not listed as valid:\n${io.stdout}`,
    );
  }
  const broken = rows.find((r) => r.includes("invalid"));
  assert.ok(broken, io.stdout);
  assert.ok(broken.includes(join(home.pluginsDir, "broken")), broken);
  assert.match(broken, /broken\/manifest\.yaml:4:\d+: plugin\.version: /);
  assert.match(broken, /plugin\.version/);
  assert.match(broken, /semantic version/);
});

Deno.test("`plugins list` shows the live state and health of a host that `run` serves", async () => {
  const port = freePort();
  await using home = await makeHome({ server: { enabled: true, listen: `127.0.0.1:${port}` } });
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await home.addPlugin(join(SAMPLE_PLUGINS, "dog"), {
    manifest: (text) => text + "depends_on: [ghost]\n",
  });
  // `run` in its own process, as a user would have it in another terminal.
  const child = home.spawnRun();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  try {
    out = await readUntil(reader);
    assert.match(out, /HTTP gateway: http:\/\/127\.0\.0\.1:\d+/, out);
    const io = await cliOk(["--config", home.configPath, "plugins", "list"]);
    assert.match(io.stdout, /^cat\s+\S+\s+valid\s+ready\s+healthy\s/m);
    assert.match(io.stdout, /^dog\s+\S+\s+valid\s+failed\s+offline\s/m);
  } finally {
    reader.releaseLock();
    try {
      child.kill("SIGINT");
    } catch { /* gone */ }
    await child.status;
    await stderr.catch(() => "");
  }
});

/** A loopback port that was free a moment ago. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

Deno.test("`plugins list --json` prints valid JSON with the valid and invalid plugins", async () => {
  await using home = await cliHome({ broken: true });
  const io = memoryIo();
  const code = await runCli(["--config", home.configPath, "plugins", "list", "--json"], io);
  assert.equal(code, 0, io.stderr);
  const parsed = JSON.parse(io.stdout);
  assert.deepEqual(
    parsed.plugins.map((p: { name: string }) => p.name).sort(),
    ["behave", "cat", "dog"],
  );
  const cat = parsed.plugins.find((p: { name: string }) => p.name === "cat");
  assert.equal(cat.version, "1.2.0");
  assert.equal(cat.enabled, true);
  assert.deepEqual(cat.methods, ["speak"]);
  assert.equal(parsed.invalid.length, 1);
  assert.equal(parsed.invalid[0].dir, join(home.pluginsDir, "broken"));
  assert.equal(typeof parsed.invalid[0].error.code, "string");
  assert.match(JSON.stringify(parsed.invalid[0].error), /plugin\.version/);
});

Deno.test("`plugins inspect cat` shows the deno argv and env names but no env values", async () => {
  await using home = await cliHome();
  const io = memoryIo();
  const code = await runCli(["--config", home.configPath, "plugins", "inspect", "cat"], io);
  assert.equal(code, 0, io.stderr);
  assert.match(io.stdout, /^cat 1\.2\.0 /);
  assert.ok(io.stdout.includes("--no-prompt"), io.stdout);
  assert.ok(io.stdout.includes("--deny-net="), io.stdout);
  assert.match(io.stdout, /^ {2}CAT_TOKEN$/m);
  assert.match(io.stdout, new RegExp(`^ {2}${DEFAULT_HANDSHAKE.magic_cookie_key}$`, "m"));
  // Values stay out of the output: the configured secret and the handshake cookie.
  assert.ok(!io.stdout.includes(SECRET), "the env value of CAT_TOKEN is printed");
  assert.ok(!io.stdout.includes(DEFAULT_HANDSHAKE.magic_cookie_value), "the cookie is printed");
  assert.ok(!io.stderr.includes(SECRET));
});

Deno.test("`plugins inspect` runs the module-graph check: its files, or the import it refuses", async () => {
  await using home = await cliHome();
  const io = memoryIo();
  assert.equal(await runCli(["--config", home.configPath, "plugins", "inspect", "cat"], io), 0);
  assert.match(
    io.stdout,
    /module graph: 1 file\(s\) of its own, plus the SDK\n {2}\S+\/cat\/main\.ts\n/,
  );
  assert.match(io.stdout, /^verdict: may start$/m);
  // dog's code now imports the host's config file as text: Deno would load it without --allow-read.
  const main = join(home.pluginsDir, "dog/main.ts");
  await Deno.writeTextFile(
    main,
    `import secret from ${JSON.stringify(home.configPath)} with { type: "text" };\n` +
      (await Deno.readTextFile(main)) + "\nconsole.log(secret.length);\n",
  );
  const text = memoryIo();
  assert.equal(await runCli(["--config", home.configPath, "plugins", "inspect", "dog"], text), 0);
  assert.match(text.stdout, /module graph: REFUSED \(MODULE_OUTSIDE_PLUGIN\)\n/);
  assert.ok(text.stdout.includes(home.configPath), text.stdout);
  assert.match(text.stdout, /^verdict: refused \(its code: MODULE_OUTSIDE_PLUGIN\)$/m);
  const json = memoryIo();
  await runCli(["--config", home.configPath, "plugins", "inspect", "dog", "--json"], json);
  assert.equal(JSON.parse(json.stdout).module_graph.error.code, "MODULE_OUTSIDE_PLUGIN");
  // A checksum that does not match: refused the way a start would be.
  const behave = join(home.pluginsDir, "behave/manifest.yaml");
  await Deno.writeTextFile(
    behave,
    (await Deno.readTextFile(behave)) + `security: { checksum: "sha256:${"0".repeat(64)}" }\n`,
  );
  const sum = memoryIo();
  assert.equal(await runCli(["--config", home.configPath, "plugins", "inspect", "behave"], sum), 0);
  assert.match(sum.stdout, /^checksum: +REFUSED \(CHECKSUM_MISMATCH\)$/m);
  assert.match(sum.stdout, /^verdict: refused \(its code: CHECKSUM_MISMATCH\)$/m);
  assert.match(
    io.stdout,
    /^checksum: +none \(unsigned; the code hashes to sha256:[0-9a-f]{64}\)$/m,
  );
});

Deno.test("`run` prints the plugin table and, when its signal aborts, stops every plugin and exits 0", async () => {
  // Info, so that run's own "plugsconc stopped" record reaches the log store.
  await using home = await makeHome({ logging: { level: "info" } });
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  await home.addPlugin(join(SAMPLE_PLUGINS, "dog"));
  const controller = new AbortController();
  const io = memoryIo(controller.signal);
  const running = runCli(["--config", home.configPath, "run"], io);
  let code: number | undefined;
  running.then((c) => (code = c));
  try {
    assert.ok(
      await waitFor(() => /Ctrl-C stops the host/.test(io.stdout) || code !== undefined, 30_000),
      `no table; stdout: ${io.stdout}; stderr: ${io.stderr}`,
    );
    assert.equal(code, undefined, `run ended early: ${io.stderr}`);
    assert.match(io.stdout, /job pool: [12] workers, queue limit 1000; log store: \S+logs\.db\n/);
    const rows = io.stdout.split("\n").filter((l) => /^(cat|dog)\s/.test(l));
    assert.equal(rows.length, 2, io.stdout);
    const pids = rows.map((r) => {
      const m = /^(cat|dog)\s+\d+\.\d+\.\d+\s+ready\s+(\d+)\s+healthy\s/.exec(r);
      assert.ok(m, `not a ready row: ${r}`);
      return Number(m[2]);
    });
    assert.ok(pids.every(pidAlive), `${pids}`);

    controller.abort();
    assert.equal(await within(running, 10_000), 0, io.stderr);
    assert.ok(
      await waitFor(() => pids.every((p) => !pidAlive(p)), 2000),
      `still alive: ${pids.filter(pidAlive)}`,
    );
    // run wrote its own records into the log store, and they are all there after it stopped.
    const logs = await cliOk([
      "--config",
      home.configPath,
      "logs",
      "query",
      "--grep",
      "plugsconc stopped",
    ]);
    assert.match(logs.stdout, /plugsconc stopped/);
    // ... and the effective settings it logged at start.
    const started = memoryIo();
    await runCli(
      ["--config", home.configPath, "logs", "query", "--json", "--grep", "starting with"],
      started,
    );
    const record = JSON.parse(started.stdout.trim().split("\n")[0]!);
    assert.equal(record.properties.pluginsDir, home.pluginsDir);
    assert.equal(record.properties.policy, "strict");
    assert.equal(record.properties.config, home.configPath);
  } finally {
    controller.abort();
    await within(running, 10_000);
  }
});

/**
 * `run` in a real process with a plugin that speaks just enough protocol to start, then
 * ignores $/shutdown and the end of its stdin: stopping it takes the grace period, then
 * SIGTERM (about 2 s), so signals sent meanwhile surely land while the host is stopping.
 */
async function stubbornRun() {
  const home = await makeHome({
    logging: { level: "info", format: "json" },
    defaults: { stop_grace_ms: 1000 },
  });
  const dir = join(home.pluginsDir, "stubborn");
  await Deno.mkdir(dir);
  await Deno.writeTextFile(
    join(dir, "manifest.yaml"),
    "plugin: { name: stubborn, version: 1.0.0, entrypoint: ./main.ts }\n",
  );
  await Deno.writeTextFile(
    join(dir, "main.ts"),
    `Deno.addSignalListener("SIGINT", () => {});
const ready = { jsonrpc: "2.0", method: "$/ready", params: { protocol: 1, methods: [] } };
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(ready) + "\\n"));
setInterval(() => {}, 1000);
for await (const _ of Deno.stdin.readable) { /* ignore everything */ }
`,
  );
  const child = home.spawnRun();
  const state = { log: "", out: "" };
  const stderr = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) state.log += chunk;
  })();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  state.out = await readUntil(reader);
  const pid = Number(/^stubborn\s+\S+\s+ready\s+(\d+)/m.exec(state.out)?.[1]);
  return {
    child,
    state,
    pid,
    /** Sends SIGINT: the first, then `more` once the host says it is stopping, 50 ms apart. */
    async interrupt(more: number) {
      child.kill("SIGINT");
      assert.ok(await waitFor(() => state.log.includes('"stopping"'), 10_000), state.log);
      for (let i = 0; i < more; i++) {
        child.kill("SIGINT");
        await new Promise((r) => setTimeout(r, 50));
      }
      const status = await child.status;
      await stderr;
      return status;
    },
    async [Symbol.asyncDispose]() {
      clearTimeout(timer);
      reader.releaseLock();
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await home[Symbol.asyncDispose]();
    },
  };
}

Deno.test("`run` in a real process stops cleanly on Ctrl-C, even when more SIGINTs follow while it stops", async () => {
  await using run = await stubbornRun();
  assert.ok(run.pid > 0, run.state.out + run.state.log);
  // A terminal sends SIGINT to the whole group, and `deno task` forwards one more.
  const status = await run.interrupt(2);
  const log = run.state.log;
  assert.equal(status.code, 0, log.slice(-2000));
  assert.equal(log.match(/already stopping/g)?.length, 2, log.slice(-2000));
  assert.match(log, /plugsconc stopped/);
  assert.ok(await waitFor(() => !pidAlive(run.pid), 2000), "the plugin outlived the host");
});

Deno.test("`run` quits at once (exit 130) on the fourth Ctrl-C, and its plugins die with it", async () => {
  await using run = await stubbornRun();
  assert.ok(run.pid > 0, run.state.out + run.state.log);
  const status = await run.interrupt(3);
  assert.equal(status.code, 130, run.state.log.slice(-2000));
  assert.doesNotMatch(run.state.log, /plugsconc stopped/);
  assert.ok(await waitFor(() => !pidAlive(run.pid), 5000), "the plugin outlived the host");
});

Deno.test("`run` with server.enabled serves plugin calls on the address it prints, and stops it with the host", async () => {
  await using home = await makeHome({ server: { enabled: true, listen: "127.0.0.1:0" } });
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  const controller = new AbortController();
  const io = memoryIo(controller.signal);
  const running = runCli(["--config", home.configPath, "run"], io);
  try {
    assert.ok(await waitFor(() => /Ctrl-C stops the host/.test(io.stdout), 30_000), io.stderr);
    const url = /HTTP gateway: (http:\/\/127\.0\.0\.1:\d+) \(no token: loopback only\)/.exec(
      io.stdout,
    )
      ?.[1];
    assert.ok(url, io.stdout);
    const res = await fetch(`${url}/v1/plugins/cat/speak`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ loud: true }),
    });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { result: { sound: "MEOW!" } });
    controller.abort();
    assert.equal(await within(running, 10_000), 0, io.stderr);
    await assert.rejects(fetch(`${url}/healthz`), TypeError, "the gateway still listens");
  } finally {
    controller.abort();
    await within(running, 10_000);
  }
});

Deno.test("`run` refuses a non-loopback listen without a token before any plugin starts: exit 2, SERVER_INSECURE", async () => {
  await using home = await makeHome({ server: { enabled: true, listen: "0.0.0.0:0" } });
  await home.addPlugin(join(SAMPLE_PLUGINS, "cat"));
  const io = memoryIo();
  const code = await within(runCli(["--config", home.configPath, "run"], io), 30_000);
  assert.equal(code, 2, io.stderr);
  assert.match(
    io.stderr,
    /^error \[SERVER_INSECURE\]: refusing to serve plugin calls on 0\.0\.0\.0:0 without a token/,
  );
});

Deno.test("`new plugin` writes a plugin that runs, and refuses a bad name or an existing folder", async () => {
  await using home = await makeHome({ watcher: { enabled: false } });
  const io = await cliOk(["--config", home.configPath, "new", "plugin", "hello"]);
  assert.match(io.stdout, new RegExp(`created ${join(home.pluginsDir, "hello")}\n`));
  assert.ok(io.stdout.includes(`--config ${JSON.stringify(home.configPath)} call hello greet`));
  const call = await cliOk([
    "--config",
    home.configPath,
    "call",
    "hello",
    "greet",
    '{"name":"ada"}',
  ]);
  assert.deepEqual(JSON.parse(call.stdout), { greeting: "hello, ada" });
  const main = join(home.pluginsDir, "hello", "main.ts");
  const before = await Deno.readTextFile(main);
  await Deno.writeTextFile(main, before + "// mine\n");
  const again = memoryIo();
  assert.equal(await runCli(["--config", home.configPath, "new", "plugin", "hello"], again), 2);
  assert.match(again.stderr, /error \[USAGE\]: .*hello already exists/);
  assert.equal(
    await Deno.readTextFile(main),
    before + "// mine\n",
    "the existing plugin is untouched",
  );
  // The name is taken by a plugin in a folder of another name.
  await Deno.rename(join(home.pluginsDir, "hello"), join(home.pluginsDir, "greeter"));
  const taken = memoryIo();
  assert.equal(await runCli(["--config", home.configPath, "new", "plugin", "hello"], taken), 2);
  assert.match(taken.stderr, /plugin hello already exists in .*greeter/);
  const bad = memoryIo();
  assert.equal(await runCli(["--config", home.configPath, "new", "plugin", "../up"], bad), 2);
  assert.match(bad.stderr, /"\.\.\/up" is not a plugin name/);
});
