import assert from "node:assert/strict";
import { join } from "node:path";
import { type ChangeBatch, isIgnored, PluginWatcher } from "./mod.ts";

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.realPath(await Deno.makeTempDir({ prefix: "plugsconc-watch-" }));
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** A watcher that records batches; `settle()` waits until no batch arrived for `quietMs`. */
function recorder(root: string, debounceMs = 100) {
  const batches: ChangeBatch[] = [];
  const watcher = new PluginWatcher({ root, debounceMs, onBatch: (b) => void batches.push(b) });
  return {
    batches,
    watcher,
    async settle(quietMs = debounceMs * 6, maxMs = 10_000) {
      const end = Date.now() + maxMs;
      let seen = -1;
      let quietSince = Date.now();
      while (Date.now() < end) {
        if (batches.length !== seen) {
          seen = batches.length;
          quietSince = Date.now();
        } else if (Date.now() - quietSince >= quietMs) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

const ready = () => new Promise((r) => setTimeout(r, 150)); // let inotify watches settle

Deno.test("50 writes to one file within a second yield one batch", async () => {
  await withRoot(async (root) => {
    await Deno.mkdir(join(root, "cat"));
    await using r = { ...recorder(root, 200), [Symbol.asyncDispose]: () => r.watcher.close() };
    await ready();
    for (let i = 0; i < 50; i++) {
      await Deno.writeTextFile(join(root, "cat", "main.ts"), `// ${i}\n`);
      await new Promise((res) => setTimeout(res, 10));
    }
    await r.settle();
    assert.equal(r.batches.length, 1, JSON.stringify(r.batches));
    assert.equal(r.batches[0]?.folder, "cat");
    assert.deepEqual(r.batches[0]?.paths, [join(root, "cat", "main.ts")]);
  });
});

Deno.test("an atomic save (write a temp file, rename it over) yields one batch", async () => {
  await withRoot(async (root) => {
    await Deno.mkdir(join(root, "dog"));
    await Deno.writeTextFile(join(root, "dog", "main.ts"), "// v1\n");
    await using r = { ...recorder(root), [Symbol.asyncDispose]: () => r.watcher.close() };
    await ready();
    await Deno.writeTextFile(join(root, "dog", ".main.ts.swp"), "swap");
    await Deno.writeTextFile(join(root, "dog", "main.ts.tmp"), "// v2\n");
    await Deno.rename(join(root, "dog", "main.ts.tmp"), join(root, "dog", "main.ts"));
    await Deno.remove(join(root, "dog", ".main.ts.swp"));
    await r.settle();
    assert.equal(r.batches.length, 1, JSON.stringify(r.batches));
    assert.ok(r.batches[0]!.paths.includes(join(root, "dog", "main.ts")));
    assert.ok(!r.batches[0]!.paths.some((p) => p.endsWith(".swp")), "swap files are ignored");
  });
});

Deno.test("editing plugin A produces no batch for plugin B", async () => {
  await withRoot(async (root) => {
    await Deno.mkdir(join(root, "a"));
    await Deno.mkdir(join(root, "b"));
    await using r = { ...recorder(root), [Symbol.asyncDispose]: () => r.watcher.close() };
    await ready();
    await Deno.writeTextFile(join(root, "a", "main.ts"), "// a\n");
    await r.settle();
    assert.deepEqual(r.batches.map((b) => b.folder), ["a"]);
  });
});

Deno.test("ignored paths (.git, node_modules) produce no batch", async () => {
  await withRoot(async (root) => {
    await Deno.mkdir(join(root, "a", ".git"), { recursive: true });
    await Deno.mkdir(join(root, "a", "node_modules"), { recursive: true });
    await using r = { ...recorder(root), [Symbol.asyncDispose]: () => r.watcher.close() };
    await ready();
    await Deno.writeTextFile(join(root, "a", ".git", "HEAD"), "ref");
    await Deno.writeTextFile(join(root, "a", "node_modules", "x.js"), "");
    await r.settle();
    assert.equal(r.batches.length, 0, JSON.stringify(r.batches));
    // The watcher is alive: a real change in the same folder is reported, alone.
    await Deno.writeTextFile(join(root, "a", "main.ts"), "// v2\n");
    await r.settle();
    assert.deepEqual(r.batches.map((b) => b.paths), [[join(root, "a", "main.ts")]]);
  });
});

Deno.test("a new plugin folder created at run time is reported", async () => {
  await withRoot(async (root) => {
    await using r = { ...recorder(root), [Symbol.asyncDispose]: () => r.watcher.close() };
    await ready();
    await Deno.mkdir(join(root, "fresh"));
    await Deno.writeTextFile(join(root, "fresh", "manifest.yaml"), "plugin: {}\n");
    await r.settle();
    assert.deepEqual(r.batches.map((b) => [b.folder, b.exists]), [["fresh", true]]);
  });
});

Deno.test("the watched root deleted and recreated is watched again", async () => {
  await withRoot(async (parent) => {
    const root = join(parent, "plugins");
    await Deno.mkdir(join(root, "a"), { recursive: true });
    await using r = { ...recorder(root), [Symbol.asyncDispose]: () => r.watcher.close() };
    await ready();
    await Deno.remove(root, { recursive: true });
    await r.settle();
    await Deno.mkdir(join(root, "b"), { recursive: true });
    await r.settle();
    const deadline = Date.now() + 5000;
    while (r.watcher.rewatches === 0 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.ok(r.watcher.rewatches >= 1, "the root was watched again");
    await ready();
    const before = r.batches.length;
    await Deno.writeTextFile(join(root, "b", "main.ts"), "// after\n");
    await r.settle();
    const after = r.batches.slice(before);
    assert.ok(
      after.some((b) => b.folder === "b" && b.paths.includes(join(root, "b", "main.ts"))),
      JSON.stringify(after),
    );
  });
});

Deno.test("isIgnored() matches any path segment against simple patterns", () => {
  const patterns = [".git", "node_modules", "*.swp", "*~", ".#*"];
  assert.equal(isIgnored("cat/.git/HEAD", patterns), true);
  assert.equal(isIgnored("cat/main.ts.swp", patterns), true);
  assert.equal(isIgnored("cat/main.ts~", patterns), true);
  assert.equal(isIgnored("cat/.#main.ts", patterns), true);
  assert.equal(isIgnored("cat/main.ts", patterns), false);
  assert.equal(isIgnored("cat/gitignore", patterns), false);
});

Deno.test("a change made as soon as ready resolves is seen", async () => {
  // Twenty fresh watchers, each written to the moment it is ready: none may miss its change.
  await withRoot(async (root) => {
    await Deno.mkdir(join(root, "cat"));
    for (let i = 0; i < 20; i++) {
      const r = recorder(root, 20);
      try {
        await r.watcher.ready;
        await Deno.writeTextFile(join(root, "cat", "main.ts"), `// ${i}\n`);
        // Up to 5 s for the batch (a slow machine), then quiet.
        for (let t = 0; t < 250 && r.batches.length === 0; t++) {
          await new Promise((res) => setTimeout(res, 20));
        }
        await r.settle(150);
        assert.equal(r.batches.length, 1, `watcher ${i} saw ${r.batches.length} batches`);
      } finally {
        await r.watcher.close();
      }
    }
  });
});
