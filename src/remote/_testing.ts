/**
 * Test and benchmark helpers: a real `nats-server` on 127.0.0.1 on a free port, and
 * `plugsconc serve` workers in their own processes.
 *
 * @module
 */
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname!, "../..");

/** Where `nats-server` is looked for, in order (`NATS_SERVER` first when set). */
function natsServerCandidates(): string[] {
  const env = Deno.env.get("NATS_SERVER");
  return [
    ...(env ? [env] : []),
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
    "/usr/local/bin/nats-server",
  ];
}

/** The `nats-server` binary; throws naming where it looked (tests must fail, not skip). */
export function findNatsServer(): string {
  for (const p of natsServerCandidates()) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* next */ }
  }
  throw new Error(
    `nats-server not found (looked in ${natsServerCandidates().join(", ")}): the remote tests ` +
      "need a real NATS server; install it (Debian: apt-get install nats-server) or set NATS_SERVER",
  );
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A running nats-server; stopped on dispose. */
export interface NatsServer extends AsyncDisposable {
  readonly url: string;
  readonly port: number;
}

/** Starts nats-server on 127.0.0.1 on a free port (`token`: require that token). */
export async function startNatsServer(options: { token?: string } = {}): Promise<NatsServer> {
  const bin = findNatsServer();
  const port = freePort();
  const args = ["-a", "127.0.0.1", "-p", String(port)];
  if (options.token) args.push("--auth", options.token);
  const child = new Deno.Command(bin, { args, stdout: "null", stderr: "null" }).spawn();
  const end = Date.now() + 10_000;
  for (;;) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      break;
    } catch (e) {
      if (Date.now() > end) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        throw new Error(`nats-server did not listen on 127.0.0.1:${port} within 10 s: ${e}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      await child.status;
    },
  };
}

/** A `plugsconc serve` process. */
export interface WorkerProcess extends AsyncDisposable {
  readonly id: string;
  readonly child: Deno.ChildProcess;
  /** Resolves with its stdout once it printed "serving"; rejects if it exits first. */
  readonly ready: Promise<string>;
  /** Everything it wrote to stderr so far. */
  stderr(): string;
  /** SIGTERM (drain) and wait. */
  stop(): Promise<Deno.CommandStatus>;
}

/** Spawns `main.ts --config <configPath> serve --nats <url> --worker-id <id>`. */
export function spawnWorker(configPath: string, url: string, id: string): WorkerProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "main.ts"),
      "--config",
      configPath,
      "serve",
      "--nats",
      url,
      "--worker-id",
      id,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let out = "";
  let err = "";
  const dec = new TextDecoder();
  const errDone = (async () => {
    for await (const c of child.stderr) err += dec.decode(c);
  })();
  const ready = new Promise<string>((resolve, reject) => {
    void (async () => {
      for await (const c of child.stdout) {
        out += dec.decode(c);
        if (/serving \d+ plugin/.test(out)) resolve(out);
      }
      await errDone;
      reject(new Error(`worker ${id} exited before serving:\n${out}\n${err}`));
    })();
  });
  ready.catch(() => {});
  let stopped: Promise<Deno.CommandStatus> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      const s = await child.status;
      await errDone.catch(() => {});
      return s;
    })();
  return {
    id,
    child,
    ready,
    stderr: () => err,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
