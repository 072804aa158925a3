import assert from "node:assert/strict";
import { join } from "node:path";
import type { ProcessCapability } from "../manifest/mod.ts";
import type { RpcHandlerContext } from "../rpc/mod.ts";
import type { ChildInfo, ProcessResult } from "../sdk/host_client.ts";
import { findSetpriv, findSetsid } from "../runtime/mod.ts";
import { ProcessService, type ProcessServiceOptions } from "./process_service.ts";
import { ProcessServiceError } from "./process_service_error.ts";

const CAPS: ProcessCapability[] = [
  { exec: { command: "/bin/echo", args: ["hello", "*"] } },
  { exec: { command: "/bin/sleep", args: ["*"] } },
  { exec: { command: "/bin/cat", args: [] } },
  { exec: { command: "/usr/bin/env", args: [] } },
  { exec: { command: "/bin/sh", args: ["-c", "sleep 60 & echo $! > grandchild.pid; wait"] } },
  { kill: ["children"] },
];

function ctx(signal = new AbortController().signal): RpcHandlerContext {
  return { signal, id: 1, method: "host/process.test" };
}

async function withService(
  options: Partial<ProcessServiceOptions>,
  fn: (
    call: (op: string, params: unknown, c?: RpcHandlerContext) => Promise<unknown>,
    cwd: string,
  ) => Promise<void>,
): Promise<void> {
  const cwd = await Deno.makeTempDir({ prefix: "plugsconc-proc-" });
  const setsid = findSetsid();
  const setpriv = findSetpriv();
  await using service = new ProcessService({
    plugin: "runner",
    capabilities: CAPS,
    cwd,
    prefix: [
      ...(setsid ? [setsid] : []),
      ...(setpriv ? [setpriv, "--pdeathsig", "KILL", "--"] : []),
    ],
    ...options,
  });
  try {
    await fn(
      async (op, params, c = ctx()) => await service.handlers[`host/process.${op}`]!(params, c),
      cwd,
    );
  } finally {
    await service.close();
    await Deno.remove(cwd, { recursive: true });
  }
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

async function gone(pid: number, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

function code(code: string) {
  return (e: unknown) => {
    assert.ok(e instanceof ProcessServiceError, `not a ProcessServiceError: ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

Deno.test("exec runs a granted command with a '*' argument and returns its output and exit code", async () => {
  await withService({}, async (call) => {
    const r = await call("exec", {
      command: "/bin/echo",
      args: ["hello", "world"],
    }) as ProcessResult;
    assert.equal(r.stdout, "hello world\n");
    assert.equal(r.code, 0);
    assert.equal(r.signal, null);
    assert.equal(r.stdout_truncated, false);
  });
});

Deno.test("exec refuses a command, an argument count or an option the manifest does not grant", async () => {
  await withService({}, async (call) => {
    await assert.rejects(call("exec", { command: "/bin/sh", args: ["-c", "id"] }), (e) => {
      code("PROCESS_NOT_ALLOWED")(e);
      assert.match(
        (e as Error).message,
        /may not run "\/bin\/sh" "-c" "id": the arguments fit none/,
      );
      return true;
    });
    await assert.rejects(call("exec", { command: "/bin/rm", args: [] }), (e) => {
      code("PROCESS_NOT_ALLOWED")(e);
      assert.match((e as Error).message, /grants only \/bin\/echo, \/bin\/sleep/);
      return true;
    });
    // `*` is one argument, never an option: no `--rsh=...`-style injection.
    for (
      const args of [["hello"], ["hello", "a", "b"], ["hello", "-n"], ["hello", "--help"], [
        "bye",
        "x",
      ]]
    ) {
      await assert.rejects(
        call("exec", { command: "/bin/echo", args }),
        code("PROCESS_NOT_ALLOWED"),
      );
    }
    // A path that names the same program another way is another command.
    await assert.rejects(
      call("exec", { command: "/bin/../bin/echo", args: ["hello", "x"] }),
      code("PROCESS_NOT_ALLOWED"),
    );
  });
  await withService({ capabilities: [] }, async (call) => {
    await assert.rejects(call("exec", { command: "/bin/echo", args: ["hello", "x"] }), (e) => {
      code("PROCESS_NOT_ALLOWED")(e);
      assert.match((e as Error).message, /grants no process capability/);
      return true;
    });
  });
});

Deno.test("a child gets only PATH and HOME (its data folder) and runs there, with stdin when given", async () => {
  Deno.env.set("PLUGSCONC_TEST_HOST_SECRET", "s3cret");
  try {
    await withService({ env: { TZ: "UTC" } }, async (call, cwd) => {
      const r = await call("exec", { command: "/usr/bin/env", args: [] }) as ProcessResult;
      const env = r.stdout.trim().split("\n").sort();
      assert.deepEqual(env, [`HOME=${cwd}`, "PATH=/usr/local/bin:/usr/bin:/bin", "TZ=UTC"]);
      const cat = await call("exec", {
        command: "/bin/cat",
        args: [],
        stdin: "from stdin\n",
      }) as ProcessResult;
      assert.equal(cat.stdout, "from stdin\n");
    });
  } finally {
    Deno.env.delete("PLUGSCONC_TEST_HOST_SECRET");
  }
});

Deno.test("output past maxOutputBytes is cut and flagged", async () => {
  await withService({ maxOutputBytes: 8 }, async (call) => {
    const r = await call("exec", {
      command: "/bin/echo",
      args: ["hello", "0123456789"],
    }) as ProcessResult;
    assert.equal(r.stdout, "hello 01");
    assert.equal(r.stdout_truncated, true);
  });
});

Deno.test("exec past timeout_ms, or cancelled, kills the child and says which", async () => {
  await withService({}, async (call) => {
    const started = Date.now();
    await assert.rejects(
      call("exec", { command: "/bin/sleep", args: ["30"], timeout_ms: 150 }),
      code("PROCESS_TIMEOUT"),
    );
    assert.ok(Date.now() - started < 10_000);
    const abort = new AbortController();
    const pending = call("exec", { command: "/bin/sleep", args: ["30"] }, ctx(abort.signal));
    setTimeout(() => abort.abort(new Error("$/cancel")), 100);
    await assert.rejects(pending, code("PROCESS_CANCELLED"));
  });
});

Deno.test("spawn, list, kill and wait are scoped to the plugin's own children", async () => {
  await withService({}, async (call) => {
    const { pid } = await call("spawn", { command: "/bin/sleep", args: ["30"] }) as { pid: number };
    assert.ok(alive(pid));
    const { children } = await call("list", {}) as { children: ChildInfo[] };
    assert.deepEqual(children.map((c) => [c.pid, c.command, c.args, c.running]), [[
      pid,
      "/bin/sleep",
      ["30"],
      true,
    ]]);
    // Not a child: the test runner itself.
    await assert.rejects(
      call("kill", { pid: Deno.pid, signal: "SIGKILL" }),
      code("PROCESS_NOT_FOUND"),
    );
    await assert.rejects(call("kill", { pid, signal: "SIGSTOP" }), code("PROCESS_INVALID_PARAMS"));
    assert.deepEqual(await call("kill", { pid }), { pid, signal: "SIGTERM", sent: true });
    const result = await call("wait", { pid }) as ProcessResult;
    assert.equal(result.signal, "SIGTERM");
    assert.equal(result.code, null);
    await assert.rejects(call("wait", { pid }), code("PROCESS_NOT_FOUND"));
    assert.deepEqual(await call("list", undefined), { children: [] });
  });
});

Deno.test("kill is refused without 'kill: [children]'", async () => {
  await withService({ capabilities: CAPS.filter((c) => !("kill" in c)) }, async (call) => {
    const { pid } = await call("spawn", { command: "/bin/sleep", args: ["30"] }) as { pid: number };
    await assert.rejects(call("kill", { pid }), (e) => {
      code("PROCESS_NOT_ALLOWED")(e);
      assert.match((e as Error).message, /no "kill: \[children\]"/);
      return true;
    });
    assert.ok(alive(pid));
  });
});

Deno.test("a plugin may have at most maxChildren children; waiting frees a place", async () => {
  await withService({ maxChildren: 2 }, async (call) => {
    const a = await call("spawn", { command: "/bin/sleep", args: ["30"] }) as { pid: number };
    await call("spawn", { command: "/bin/sleep", args: ["30"] });
    await assert.rejects(
      call("spawn", { command: "/bin/sleep", args: ["30"] }),
      code("PROCESS_LIMIT"),
    );
    await call("kill", { pid: a.pid, signal: "SIGKILL" });
    await call("wait", { pid: a.pid });
    await call("spawn", { command: "/bin/sleep", args: ["30"] });
  });
});

Deno.test("malformed params and missing or non-executable commands are clear errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = join(dir, "not-executable");
    await Deno.writeTextFile(script, "#!/bin/sh\necho hi\n");
    await Deno.chmod(script, 0o644);
    const caps: ProcessCapability[] = [
      { exec: { command: script, args: [] } },
      { exec: { command: join(dir, "missing"), args: [] } },
    ];
    await withService({ capabilities: caps }, async (call) => {
      await assert.rejects(call("exec", { command: 5 }), code("PROCESS_INVALID_PARAMS"));
      await assert.rejects(call("exec", { command: script, extra: 1 }), (e) => {
        code("PROCESS_INVALID_PARAMS")(e);
        assert.match((e as Error).message, /host\/process\.exec: invalid params: .*extra/);
        return true;
      });
      await assert.rejects(call("wait", { pid: -1 }), code("PROCESS_INVALID_PARAMS"));
      await assert.rejects(call("exec", { command: script }), (e) => {
        code("PROCESS_SPAWN_FAILED")(e);
        assert.match((e as Error).message, /not an executable file/);
        return true;
      });
      await assert.rejects(
        call("exec", { command: join(dir, "missing") }),
        code("PROCESS_SPAWN_FAILED"),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "close() kills every child and, with setsid, its grandchildren; later requests are refused",
  {
    ignore: findSetsid() === undefined,
  },
  async () => {
    const cwd = await Deno.makeTempDir();
    const service = new ProcessService({
      plugin: "runner",
      capabilities: CAPS,
      cwd,
      prefix: [findSetsid()!],
    });
    try {
      const command = "/bin/sh";
      const args = ["-c", "sleep 60 & echo $! > grandchild.pid; wait"];
      const { pid } = await service.handlers["host/process.spawn"]!({ command, args }, ctx()) as {
        pid: number;
      };
      const pidFile = join(cwd, "grandchild.pid");
      let grandchild = 0;
      for (let i = 0; i < 200 && !(grandchild > 0); i++) {
        grandchild = Number(await Deno.readTextFile(pidFile).catch(() => ""));
        if (!(grandchild > 0)) await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(grandchild > 0 && alive(grandchild), "no grandchild pid was written");
      await service.close();
      assert.ok(await gone(pid), `child ${pid} outlived close()`);
      assert.ok(await gone(grandchild), `grandchild ${grandchild} outlived close()`);
      await assert.rejects(
        Promise.resolve(
          service.handlers["host/process.exec"]!(
            { command: "/bin/echo", args: ["hello", "x"] },
            ctx(),
          ),
        ),
        code("PROCESS_CANCELLED"),
      );
    } finally {
      await service.close();
      await Deno.remove(cwd, { recursive: true });
    }
  },
);
