import assert from "node:assert/strict";
import { join } from "node:path";
import { getLogger, type LogRecord } from "@logtape/logtape";
import { ConfigSchema } from "../config/mod.ts";
import { setupLogging } from "./mod.ts";

function loggingConfig(input: unknown) {
  return ConfigSchema.parse({ logging: input }).logging;
}

Deno.test("setupLogging() writes JSON lines to the console when not a terminal", async () => {
  const lines: string[] = [];
  {
    await using _ = await setupLogging(loggingConfig({ level: "info" }), {
      write: (t) => lines.push(t),
      isTerminal: false,
    });
    const log = getLogger(["plugsconc", "test"]);
    log.debug("hidden below the level");
    log.info("hello {who}", { who: "world" });
  }
  assert.equal(lines.length, 1);
  const record = JSON.parse(lines[0]!);
  assert.equal(record.message, 'hello "world"');
  assert.equal(record.level, "INFO");
  assert.equal(record.logger, "plugsconc.test");
  assert.equal(record.properties.who, "world");
});

Deno.test("setupLogging() feeds extra sinks (the seam for the log store)", async () => {
  const seen: LogRecord[] = [];
  {
    await using _ = await setupLogging(loggingConfig({ level: "debug" }), {
      write: () => {},
      isTerminal: false,
      extraSinks: { store: (r) => seen.push(r) },
    });
    getLogger(["plugsconc", "x"]).debug("one");
    getLogger(["plugsconc", "x", "y"]).warn("two");
  }
  assert.deepEqual(seen.map((r) => [r.category.join("."), r.level]), [
    ["plugsconc.x", "debug"],
    ["plugsconc.x.y", "warning"],
  ]);
});

Deno.test("the rotating file sink writes and rotates at max_size_mb, keeping max_backups", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "logs", "host.log");
    {
      await using _ = await setupLogging(
        loggingConfig({
          level: "info",
          file: { enabled: true, path, max_size_mb: 0.004, max_backups: 3 }, // ~4 KiB
        }),
        { write: () => {}, isTerminal: false },
      );
      const log = getLogger(["plugsconc", "rotate"]);
      for (let i = 0; i < 400; i++) log.info("record {i} {pad}", { i, pad: "x".repeat(100) });
    }
    const names = [...Deno.readDirSync(join(dir, "logs"))].map((e) => e.name).sort();
    assert.deepEqual(names, ["host.log", "host.log.1", "host.log.2", "host.log.3"]);
    for (const name of names) {
      const size = Deno.statSync(join(dir, "logs", name)).size;
      // Rotation is checked per buffered write (8 KiB buffer), so a file may pass the limit by that.
      assert.ok(size > 0 && size <= 4200 + 8192 + 400, `${name} is ${size} bytes`);
    }
    const last = Deno.readTextFileSync(path).trim().split("\n").at(-1)!;
    assert.equal(JSON.parse(last).properties.i, 399);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
