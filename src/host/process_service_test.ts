import assert from "node:assert/strict";
import { join } from "node:path";
import type { ProcessCapability } from "../manifest/mod.ts";
import type { RpcHandlerContext } from "../rpc/mod.ts";
import type { ChildInfo, ProcessResult } from "../sdk/host_client.ts";
import { findSetpriv, findSetsid } from "../runtime/mod.ts";
import { captureLogs, pidAlive, waitFor } from "../../tests/_helpers.ts";
import { ProcessService, type ProcessServiceOptions } from "./process_service.ts";
import { ProcessServiceError } from "./process_service_error.ts";

const LEAVES_GRANDCHILD = "sleep 60 & echo $! > grandchild.pid; wait";
const LEAVES_GRANDCHILD_AND_EXITS = "sleep 60 & echo $! > grandchild.pid";
const RECORDS_ITSELF = "echo $$ > started.pid; exec sleep 30";
const CAPS: ProcessCapability[] = [
  { exec: { command: "/bin/echo", args: ["hello", "*"] } },
  { exec: { command: "/bin/echo", args: ["path", "${DATA_DIR}/*"] } },
  { exec: { command: "/bin/sleep", args: ["*"] } },
  { exec: { command: "/bin/cat", args: [] } },
  { exec: { command: "/bin/cat", args: ["*"] } },
  { exec: { command: "/usr/bin/env", args: [] } },
  { exec: { command: "/bin/sh", args: ["-c", LEAVES_GRANDCHILD] } },
  { exec: { command: "/bin/sh", args: ["-c", LEAVES_GRANDCHILD_AND_EXITS] } },
  { exec: { command: "/bin/sh", args: ["-c", RECORDS_ITSELF] } },
  { kill: ["children"] },
];
const SETSID = findSetsid();
const SETPRIV = findSetpriv();

function ctx(signal = new AbortController().signal): RpcHandlerContext {
  return { signal, id: 1, method: "host/process.test" };
}

type Call = (op: string, params: unknown, c?: RpcHandlerContext) => Promise<unknown>;

function caller(service: ProcessService): Call {
  return async (op, params, c = ctx()) => await service.handlers[`host/process.${op}`]!(params, c);
}

function makeService(cwd: string, options: Partial<ProcessServiceOptions> = {}): ProcessService {
  return new ProcessService({
    plugin: "runner",
    capabilities: CAPS,
    cwd,
    prefix: [
      ...(SETSID ? [SETSID] : []),
      ...(SETPRIV ? [SETPRIV, "--pdeathsig", "KILL", "--"] : []),
    ],
    processGroups: SETSID !== undefined,
    ...options,
  });
}

async function withService(
  options: Partial<ProcessServiceOptions>,
  fn: (call: Call, cwd: string, service: ProcessService) => Promise<void>,
): Promise<void> {
  const cwd = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-proc-" }));
  await using service = makeService(cwd, options);
  service.open();
  try {
    await fn(caller(service), cwd, service);
  } finally {
    await service.close();
    await Deno.remove(cwd, { recursive: true });
  }
}

function gone(pid: number, ms = 2000): Promise<boolean> {
  return waitFor(() => !pidAlive(pid), ms);
}

async function pidIn(file: string): Promise<number> {
  let pid = 0;
  await waitFor(
    async () => (pid = Number(await Deno.readTextFile(file).catch(() => ""))) > 0,
    5000,
  );
  return pid;
}

function code(code: string, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ProcessServiceError, `not a ProcessServiceError: ${e}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
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
    await assert.rejects(
      call("exec", { command: "/bin/sh", args: ["-c", "id"] }),
      code("PROCESS_NOT_ALLOWED", /may not run "\/bin\/sh" "-c" "id": the arguments fit no grant/),
    );
    await assert.rejects(
      call("exec", { command: "/bin/rm", args: [] }),
      code("PROCESS_NOT_ALLOWED", /grants only \/bin\/echo, \/bin\/sleep/),
    );
    // `*` is one plain argument: no option (-x, --rsh=...), no +cmd (vim, less), no @file
    // (gcc, javac response files), no host:path (rsync, scp, tar).
    for (
      const args of [
        ["hello"],
        ["hello", "a", "b"],
        ["hello", "-n"],
        ["hello", "--rsh=sh"],
        ["hello", "+q"],
        ["hello", "@opts"],
        ["hello", "evil.example:loot"],
        ["bye", "x"],
      ]
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
    await assert.rejects(
      call("exec", { command: "/bin/echo", args: ["hello", "x"] }),
      code("PROCESS_NOT_ALLOWED", /grants no process capability/),
    );
  });
});

Deno.test("a ${DATA_DIR}/* argument must name a path inside the data folder and is passed resolved", async () => {
  await withService({}, async (call, cwd) => {
    const r = await call("exec", {
      command: "/bin/echo",
      args: ["path", "out/report.txt"],
    }) as ProcessResult;
    assert.equal(r.stdout, `path ${cwd}/out/report.txt\n`);
    const abs = await call("exec", {
      command: "/bin/echo",
      args: ["path", `${cwd}/a`],
    }) as ProcessResult;
    assert.equal(abs.stdout, `path ${cwd}/a\n`);
    const outside = await Deno.makeTempDir();
    try {
      await Deno.symlink(outside, join(cwd, "link"));
      for (const arg of ["../escape", "/etc/passwd", "link/secret", "", "a/../../b"]) {
        await assert.rejects(
          call("exec", { command: "/bin/echo", args: ["path", arg] }),
          code("PROCESS_NOT_ALLOWED", /not a path inside the data folder/),
          arg,
        );
      }
    } finally {
      await Deno.remove(outside, { recursive: true });
    }
  });
});

Deno.test("a command inside a plugin's folders, or writable by others, is refused", async () => {
  const dir = await Deno.realPath(await Deno.makeTempDir());
  try {
    const inData = join(dir, "data", "tool");
    const shared = join(dir, "shared-tool");
    await Deno.mkdir(join(dir, "data"));
    for (const f of [inData, shared]) await Deno.writeTextFile(f, "#!/bin/sh\necho hi\n");
    await Deno.chmod(inData, 0o755);
    await Deno.chmod(shared, 0o777);
    const capabilities: ProcessCapability[] = [
      { exec: { command: inData, args: [] } },
      { exec: { command: shared, args: [] } },
    ];
    await withService({ capabilities, forbiddenRoots: [join(dir, "data")] }, async (call) => {
      await assert.rejects(
        call("exec", { command: inData }),
        code("PROCESS_NOT_ALLOWED", /it is inside/),
      );
      await assert.rejects(
        call("exec", { command: shared }),
        code("PROCESS_NOT_ALLOWED", /writable by others/),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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

Deno.test("output past maxOutputBytes is cut, flagged, and the pipe closed (an endless writer ends)", async () => {
  await withService({ maxOutputBytes: 8 }, async (call) => {
    const r = await call("exec", {
      command: "/bin/echo",
      args: ["hello", "0123456789"],
    }) as ProcessResult;
    assert.equal(r.stdout, "hello 01");
    assert.equal(r.stdout_truncated, true);
    // Without closing the pipe this would run (and cost the host CPU) until the timeout.
    const zero = await call("exec", {
      command: "/bin/cat",
      args: ["/dev/zero"],
      timeout_ms: 20_000,
    }) as ProcessResult;
    assert.equal(zero.stdout.length, 8);
    assert.equal(zero.stdout_truncated, true);
    assert.equal(zero.signal, "SIGPIPE");
  });
});

Deno.test("exec past timeout_ms, or cancelled, kills the child and says which", async () => {
  await withService({}, async (call) => {
    await assert.rejects(
      call("exec", { command: "/bin/sleep", args: ["30"], timeout_ms: 150 }),
      code("PROCESS_TIMEOUT"),
    );
    const abort = new AbortController();
    const pending = call("exec", { command: "/bin/sleep", args: ["30"] }, ctx(abort.signal));
    setTimeout(() => abort.abort(new Error("$/cancel")), 100);
    const started = Date.now();
    await assert.rejects(pending, code("PROCESS_CANCELLED"));
    assert.ok(Date.now() - started < 10_000, "the child ran on after the cancel");
  });
});

Deno.test("a request cancelled before its child starts runs nothing", async () => {
  await withService({}, async (call, cwd) => {
    for (const op of ["exec", "spawn"]) {
      const abort = new AbortController();
      abort.abort(new Error("$/cancel"));
      await assert.rejects(
        call(op, { command: "/bin/sh", args: ["-c", RECORDS_ITSELF] }, ctx(abort.signal)),
        code("PROCESS_CANCELLED"),
      );
    }
    // Cancelled while the start is under way (the host is checking the command file).
    const abort = new AbortController();
    const pending = call(
      "spawn",
      { command: "/bin/sh", args: ["-c", RECORDS_ITSELF] },
      ctx(abort.signal),
    );
    abort.abort(new Error("$/cancel"));
    await assert.rejects(pending, code("PROCESS_CANCELLED"));
    const file = join(cwd, "started.pid");
    const ran = await Deno.readTextFile(file).catch(() => "");
    if (ran !== "") {
      assert.ok(await gone(await pidIn(file)), "a cancelled spawn left its child running");
    }
    assert.deepEqual(await call("list", {}), { children: [] });
  });
});

Deno.test("spawn, list, kill and wait use the host's ids and only reach the plugin's own children", async () => {
  await withService({}, async (call) => {
    const { id, pid } = await call("spawn", { command: "/bin/sleep", args: ["30"] }) as {
      id: number;
      pid: number;
    };
    assert.ok(pidAlive(pid));
    const { children } = await call("list", {}) as { children: ChildInfo[] };
    assert.deepEqual(
      children.map((c) => [c.id, c.pid, c.command, c.args, c.running]),
      [[id, pid, "/bin/sleep", ["30"], true]],
    );
    // Not an id of this service (the test runner's pid, say).
    await assert.rejects(
      call("kill", { id: Deno.pid, signal: "SIGKILL" }),
      code("PROCESS_NOT_FOUND"),
    );
    await assert.rejects(call("kill", { pid, signal: "SIGKILL" }), code("PROCESS_INVALID_PARAMS"));
    await assert.rejects(call("kill", { id, signal: "SIGSTOP" }), code("PROCESS_INVALID_PARAMS"));
    assert.deepEqual(await call("kill", { id }), { id, signal: "SIGTERM", sent: true });
    const result = await call("wait", { id }) as ProcessResult;
    assert.equal(result.signal, "SIGTERM");
    assert.equal(result.code, null);
    await assert.rejects(call("wait", { id }), code("PROCESS_NOT_FOUND"));
    assert.deepEqual(await call("list", undefined), { children: [] });
  });
});

Deno.test("kill is refused without 'kill: [children]'", async () => {
  await withService({ capabilities: CAPS.filter((c) => !("kill" in c)) }, async (call) => {
    const { id, pid } = await call("spawn", { command: "/bin/sleep", args: ["30"] }) as {
      id: number;
      pid: number;
    };
    await assert.rejects(
      call("kill", { id }),
      code("PROCESS_NOT_ALLOWED", /no "kill: \[children\]"/),
    );
    assert.ok(pidAlive(pid));
  });
});

Deno.test("maxChildren holds against concurrent spawns; waiting frees a place", async () => {
  await withService({ maxChildren: 4 }, async (call) => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 30 }, () => call("spawn", { command: "/bin/sleep", args: ["30"] })),
    );
    const started = outcomes.filter((o) => o.status === "fulfilled");
    assert.equal(started.length, 4);
    for (const o of outcomes) {
      if (o.status === "rejected") code("PROCESS_LIMIT")(o.reason);
    }
    const { id } = (started[0] as PromiseFulfilledResult<{ id: number }>).value;
    await call("kill", { id, signal: "SIGKILL" });
    await call("wait", { id });
    await call("spawn", { command: "/bin/sleep", args: ["30"] });
  });
});

Deno.test("maxRequests bounds the requests in progress", async () => {
  await withService({ maxRequests: 2 }, async (call) => {
    const { id } = await call("spawn", { command: "/bin/sleep", args: ["30"] }) as { id: number };
    const abort = new AbortController();
    const waits = [
      call("wait", { id }, ctx(abort.signal)),
      call("wait", { id }, ctx(abort.signal)),
    ];
    await assert.rejects(call("list", {}), code("PROCESS_LIMIT", /2 host\/process requests/));
    abort.abort(new Error("done"));
    for (const w of waits) await assert.rejects(w, code("PROCESS_CANCELLED"));
    assert.equal(((await call("list", {})) as { children: unknown[] }).children.length, 1);
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
      await assert.rejects(
        call("exec", { command: script, extra: 1 }),
        code("PROCESS_INVALID_PARAMS", /host\/process\.exec: invalid params: .*extra/),
      );
      await assert.rejects(
        call("exec", { command: script, stdin: "x".repeat(1024 * 1024 + 1) }),
        code("PROCESS_INVALID_PARAMS", /stdin: at most 1 Mi characters/),
      );
      await assert.rejects(call("wait", { id: -1 }), code("PROCESS_INVALID_PARAMS"));
      await assert.rejects(
        call("exec", { command: script }),
        code("PROCESS_SPAWN_FAILED", /not an executable file/),
      );
      await assert.rejects(
        call("exec", { command: join(dir, "missing") }),
        code("PROCESS_SPAWN_FAILED"),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("refusals are logged for the audit trail, at most 20 per 10 s, then counted", async () => {
  await using logs = await captureLogs();
  await withService({}, async (call) => {
    for (let i = 0; i < 30; i++) {
      await assert.rejects(call("exec", { command: "/bin/sh", args: ["-c", `x${i}`] }));
    }
  });
  const refusals = logs.records.filter((r) =>
    r.category.join(".") === "plugsconc.process" && r.level === "warning"
  );
  assert.equal(refusals.length, 20);
  assert.equal(refusals[0]!.properties.plugin, "runner");
  assert.deepEqual(refusals[0]!.properties.args, ["-c", "x0"]);
});

Deno.test("requests before open() or after close() are refused", async () => {
  const cwd = await Deno.makeTempDir();
  const service = makeService(cwd);
  const call = caller(service);
  try {
    await assert.rejects(
      call("exec", { command: "/bin/echo", args: ["hello", "x"] }),
      code("PROCESS_CANCELLED", /has not finished its handshake/),
    );
    service.open();
    await call("exec", { command: "/bin/echo", args: ["hello", "x"] });
    await service.close();
    await assert.rejects(call("list", {}), code("PROCESS_CANCELLED", /is stopping/));
  } finally {
    await service.close();
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("close() during a start leaves no child running", async () => {
  // close() lands at different points of the start (checks, spawn, bookkeeping): whether the
  // spawn is refused or went through, no child may be left alive.
  for (const delayMs of [0, 1, 2, 4, 8, 16]) {
    const cwd = await Deno.realPath(await Deno.makeTempDir());
    const service = makeService(cwd);
    service.open();
    try {
      const pending = caller(service)("spawn", {
        command: "/bin/sh",
        args: ["-c", RECORDS_ITSELF],
      });
      await new Promise((r) => setTimeout(r, delayMs));
      // A child missed by close() would hold it until the child's own end (30 s).
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        service.close().then(() => "closed"),
        new Promise((r) => (timer = setTimeout(() => r("still closing after 10 s"), 10_000))),
      ]);
      clearTimeout(timer);
      assert.equal(closed, "closed", `after ${delayMs} ms`);
      const outcome = await pending.then(
        () => "spawned",
        (e) => (code("PROCESS_CANCELLED")(e), "refused"),
      );
      const file = join(cwd, "started.pid");
      // An empty file: the shell was killed between creating it and writing its pid.
      const pid = Number(await Deno.readTextFile(file).catch(() => ""));
      if (pid > 0) {
        assert.ok(
          await gone(pid),
          `after ${delayMs} ms (${outcome}): child ${pid} outlived close()`,
        );
      }
    } finally {
      await service.close();
      await Deno.remove(cwd, { recursive: true });
    }
  }
});

Deno.test("a child's process group is killed with it: on close(), and when the child exits first", {
  ignore: SETSID === undefined,
}, async () => {
  await withService({}, async (call, cwd, service) => {
    const pidFile = join(cwd, "grandchild.pid");
    // The child stays (waits for its grandchild) until close().
    const { pid } = await call("spawn", {
      command: "/bin/sh",
      args: ["-c", LEAVES_GRANDCHILD],
    }) as {
      pid: number;
    };
    const grandchild = await pidIn(pidFile);
    assert.ok(grandchild > 0 && pidAlive(grandchild), "no grandchild pid was written");
    await service.close();
    assert.ok(await gone(pid), `child ${pid} outlived close()`);
    assert.ok(await gone(grandchild), `grandchild ${grandchild} outlived close()`);
  });
  await withService({}, async (call, cwd) => {
    // The child exits at once and leaves its grandchild behind.
    const r = await call("exec", {
      command: "/bin/sh",
      args: ["-c", LEAVES_GRANDCHILD_AND_EXITS],
    }) as ProcessResult;
    assert.equal(r.code, 0);
    const grandchild = await pidIn(join(cwd, "grandchild.pid"));
    assert.ok(await gone(grandchild), `grandchild ${grandchild} outlived its exited parent`);
  });
});
