import assert from "node:assert/strict";
import { join } from "node:path";
import { checkModuleGraph, type ModuleGraphOptions, SandboxError, sdkModuleFiles } from "./mod.ts";
import { makeHost, type TestHost } from "./_testing.ts";

async function options(host: TestHost): Promise<ModuleGraphOptions> {
  return {
    importMapPath: host.importMapPath,
    denoDir: join(host.root, "deno-dir"),
    allowed: await sdkModuleFiles(host.sdkEntry, {
      importMapPath: host.importMapPath,
      denoDir: join(host.root, "deno-dir"),
    }),
  };
}

async function refused(p: Promise<unknown>, code: string): Promise<SandboxError> {
  const e = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(e instanceof SandboxError, `expected SandboxError, got ${String(e)}`);
  assert.equal(e.code, code, e.message);
  return e;
}

Deno.test("checkModuleGraph() refuses a static text import of a file outside the plugin", async () => {
  await using host = await makeHost();
  const secret = await host.write("secret.txt", "hunter2");
  const plugin = await host.plugin({}, {
    "main.ts": `import secret from ${JSON.stringify(secret)} with { type: "text" };\n` +
      "console.log(secret);\n",
  });
  const e = await refused(checkModuleGraph(plugin, await options(host)), "MODULE_OUTSIDE_PLUGIN");
  assert.deepEqual(e.modules.map((m) => [m.specifier, m.importedBy]), [
    [`file://${secret}`, [`file://${plugin.entrypoint}`]],
  ]);
  assert.match(e.message, /secret\.txt \(imported by file:\/\/.*main\.ts\)/);
  assert.equal(e.plugin, "cat");
});

Deno.test("checkModuleGraph() refuses an import of another plugin's module", async () => {
  await using host = await makeHost();
  await host.plugin({ plugin: { name: "other" } }, { "x.ts": "export const x = 1;\n" });
  const plugin = await host.plugin({}, {
    "main.ts": 'import { x } from "../other/x.ts";\nconsole.log(x);\n',
  });
  const e = await refused(checkModuleGraph(plugin, await options(host)), "MODULE_OUTSIDE_PLUGIN");
  assert.deepEqual(e.modules.map((m) => m.path), [join(host.pluginsDir, "other", "x.ts")]);
});

Deno.test("checkModuleGraph() allows the plugin's own files, node: built-ins and the SDK", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({}, {
    "main.ts":
      'import { helper } from "plugsconc/sdk";\nimport { local } from "./lib/local.ts";\n' +
      'import data from "./data.json" with { type: "json" };\nimport { join } from "node:path";\n' +
      "console.log(helper, local, data, join);\n",
    "lib/local.ts": "export const local = 1;\n",
    "data.json": '{"a":1}\n',
  });
  const graph = await checkModuleGraph(plugin, await options(host));
  assert.deepEqual(
    graph.files,
    [
      join(plugin.dir, "data.json"),
      join(plugin.dir, "lib", "local.ts"),
      plugin.entrypoint,
      join(host.root, "sdk", "_helper.ts"),
      host.sdkEntry,
    ].sort(),
  );
  assert.ok(graph.modules.some((m) => m.specifier === "node:path" && m.kind === "node"));
});

Deno.test("checkModuleGraph() refuses the SDK when it is not in allowed", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({}, { "main.ts": 'import "plugsconc/sdk";\n' });
  const e = await refused(
    checkModuleGraph(plugin, { importMapPath: host.importMapPath, denoDir: join(host.root, "d") }),
    "MODULE_OUTSIDE_PLUGIN",
  );
  assert.deepEqual(e.modules.map((m) => m.path).sort(), [
    join(host.root, "sdk", "_helper.ts"),
    host.sdkEntry,
  ]);
});

Deno.test("checkModuleGraph() refuses a module reached through a symlink in the plugin folder", async () => {
  await using host = await makeHost();
  const outside = await host.write("outside/evil.ts", "export const e = 1;\n");
  const plugin = await host.plugin({}, {
    "main.ts": 'import { e } from "./evil.ts";\nconsole.log(e);\n',
  });
  await Deno.symlink(outside, join(plugin.dir, "evil.ts"));
  const e = await refused(checkModuleGraph(plugin, await options(host)), "MODULE_OUTSIDE_PLUGIN");
  assert.equal(e.modules.length, 1);
  assert.equal(e.modules[0]!.path, outside);
  assert.match(e.modules[0]!.reason, /through a symlink/);
});

Deno.test("checkModuleGraph() refuses require() of an outside file that Deno would preload", async () => {
  await using host = await makeHost();
  // Deno pre-loads `require("<literal>")` from createRequire as part of the graph, without
  // --allow-read; the graph check sees it.
  const secret = await host.write("secret.json", '{"key":"s3cret"}');
  const plugin = await host.plugin({}, {
    "main.ts": 'import { createRequire } from "node:module";\n' +
      "const require = createRequire(import.meta.url);\n" +
      `console.log(require(${JSON.stringify(secret)}));\n`,
  });
  const e = await refused(checkModuleGraph(plugin, await options(host)), "MODULE_OUTSIDE_PLUGIN");
  assert.deepEqual(e.modules.map((m) => m.path), [secret]);
});

Deno.test("checkModuleGraph() refuses npm:, jsr:, https: and data: modules", async (t) => {
  await using host = await makeHost();
  const rows: [string, RegExp][] = [
    ["npm:left-pad@1", /npm packages are not available/],
    ["jsr:@std/path", /JSR packages are not available/],
    ["https://127.0.0.1:9/mod.ts", /remote modules are not loaded/],
    ["data:text/javascript,export default 1", /data: URL modules are refused/],
  ];
  for (const [specifier, reason] of rows) {
    await t.step(specifier, async () => {
      const plugin = await host.plugin({}, { "main.ts": `import ${JSON.stringify(specifier)};\n` });
      const e = await refused(
        checkModuleGraph(plugin, await options(host)),
        "MODULE_OUTSIDE_PLUGIN",
      );
      assert.deepEqual(e.modules.map((m) => m.specifier), [specifier]);
      assert.match(e.modules[0]!.reason, reason);
    });
  }
});

Deno.test("checkModuleGraph() reports a missing module as MODULE_GRAPH", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({}, { "main.ts": 'import "./missing.ts";\n' });
  const e = await refused(checkModuleGraph(plugin, await options(host)), "MODULE_GRAPH");
  assert.match(e.message, /missing\.ts.*Module not found/);
});

Deno.test("checkModuleGraph() reports an unresolvable bare import as MODULE_GRAPH", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({}, { "main.ts": 'import "lodash";\n' });
  const e = await refused(checkModuleGraph(plugin, await options(host)), "MODULE_GRAPH");
  assert.match(e.message, /import "lodash"/);
});

Deno.test("checkModuleGraph() reports a syntax error as MODULE_GRAPH", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({}, { "main.ts": "export const = ;\n" });
  const e = await refused(checkModuleGraph(plugin, await options(host)), "MODULE_GRAPH");
  assert.match(e.message, /SyntaxError|Unexpected/);
});

Deno.test("checkModuleGraph() turns a failing deno info into MODULE_GRAPH with its stderr", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({});
  const e = await refused(
    checkModuleGraph(plugin, {
      importMapPath: join(host.root, "no-such-import-map.json"),
      denoDir: join(host.root, "d"),
    }),
    "MODULE_GRAPH",
  );
  assert.match(e.message, /deno info failed .*exit code 1\)[\s\S]*import map/);
});

Deno.test("checkModuleGraph() turns a missing deno binary into MODULE_GRAPH", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({});
  await refused(
    checkModuleGraph(plugin, {
      denoBin: join(host.root, "no-deno"),
      importMapPath: host.importMapPath,
      denoDir: join(host.root, "d"),
    }),
    "MODULE_GRAPH",
  );
});

async function fakeDeno(host: TestHost, script: string): Promise<string> {
  const path = await host.write("bin/fake-deno", `#!/bin/sh\n${script}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("checkModuleGraph() gives up after timeoutMs with MODULE_GRAPH", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({});
  const e = await refused(
    checkModuleGraph(plugin, {
      denoBin: await fakeDeno(host, "exec sleep 10"),
      importMapPath: host.importMapPath,
      denoDir: join(host.root, "d"),
      timeoutMs: 200,
    }),
    "MODULE_GRAPH",
  );
  assert.match(e.message, /did not finish within 200 ms/);
});

Deno.test("checkModuleGraph() refuses output that is not deno info JSON", async (t) => {
  await using host = await makeHost();
  const plugin = await host.plugin({});
  const rows: [string, RegExp][] = [
    ["echo 'not json'", /invalid JSON/],
    [`echo '{"modules": 3}'`, /unexpected JSON shape/],
  ];
  for (const [script, message] of rows) {
    await t.step(script, async () => {
      const e = await refused(
        checkModuleGraph(plugin, {
          denoBin: await fakeDeno(host, script),
          importMapPath: host.importMapPath,
          denoDir: join(host.root, "d"),
        }),
        "MODULE_GRAPH",
      );
      assert.match(e.message, message);
    });
  }
});

Deno.test("checkModuleGraph() runs deno info with a cleared environment", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({});
  const envFile = join(host.root, "env.txt");
  const denoDir = join(host.root, "d");
  const e = await refused(
    checkModuleGraph(plugin, {
      denoBin: await fakeDeno(host, `env > ${envFile}; echo "$@" >> ${envFile}; echo '{}'`),
      importMapPath: host.importMapPath,
      denoDir,
    }),
    "MODULE_GRAPH",
  );
  assert.match(e.message, /unexpected JSON shape/);
  const lines = (await Deno.readTextFile(envFile)).trim().split("\n");
  const vars = lines.slice(0, -1).map((l) => l.split("=")[0])
    // set by the shell itself
    .filter((n) => !["PWD", "OLDPWD", "SHLVL", "_"].includes(n!));
  assert.deepEqual(vars.sort(), ["DENO_DIR", "NO_COLOR"]);
  assert.ok(lines.includes(`DENO_DIR=${denoDir}`));
  assert.equal(
    lines.at(-1),
    `info --json --no-config --no-lock --no-remote --no-npm --import-map=${host.importMapPath} ` +
      plugin.entrypoint,
  );
});

Deno.test("checkModuleGraph() rethrows the reason of an aborted signal", async () => {
  await using host = await makeHost();
  const plugin = await host.plugin({});
  const controller = new AbortController();
  controller.abort(new Error("host stopping"));
  await assert.rejects(
    checkModuleGraph(plugin, { ...(await options(host)), signal: controller.signal }),
    /host stopping/,
  );
});

Deno.test("sdkModuleFiles() returns every local file of the SDK graph", async () => {
  await using host = await makeHost();
  const files = await sdkModuleFiles(host.sdkEntry, {
    importMapPath: host.importMapPath,
    denoDir: join(host.root, "d"),
  });
  assert.deepEqual([...files].sort(), [join(host.root, "sdk", "_helper.ts"), host.sdkEntry]);
});

Deno.test("sdkModuleFiles() refuses an SDK that imports remote code", async () => {
  await using host = await makeHost();
  const entry = await host.write("sdk2/mod.ts", 'import "https://127.0.0.1:9/x.ts";\n');
  await refused(
    sdkModuleFiles(entry, { importMapPath: host.importMapPath, denoDir: join(host.root, "d") }),
    "MODULE_GRAPH",
  );
});
