/**
 * `deno task compile`: builds the single `plugsconc` executable with `deno compile`.
 *
 * `deno compile` downloads a runtime (`denort`) from the Deno site on first use. On a
 * machine that cannot reach it, this script says so in one clear line instead of a long
 * network error, and exits 1.
 *
 * @module
 */
const target = Deno.args[0]; // optional --target triple, e.g. x86_64-unknown-linux-gnu
const output = "dist/plugsconc" + (Deno.build.os === "windows" ? ".exe" : "");
const args = [
  "compile",
  "-A",
  // As deno.json's "unstable": the gateway reads request.signal for client disconnects.
  "--unstable-no-legacy-abort",
  // Manifest `pattern`s run on the host against callers' params: V8's linear-time engine
  // only (see src/schema/), never the backtracking one.
  "--v8-flags=--enable-experimental-regexp-engine",
  "--no-check",
  // Not reached by static imports, so not embedded unless named: the SDK (written to disk
  // for plugins at start), the modules Web Workers load, and the checksum job module.
  "--include",
  "src/sdk/",
  "--include",
  "src/schema/",
  "--include",
  "src/pool/_worker.ts",
  "--include",
  "src/logs/_store_worker.ts",
  "--include",
  "src/integrity/hash_job.ts",
  "--output",
  output,
  ...(target ? ["--target", target] : []),
  "main.ts",
];
const child = new Deno.Command(Deno.execPath(), { args, stdout: "inherit", stderr: "piped" })
  .spawn();
const result = await child.output();
const stderr = new TextDecoder().decode(result.stderr);
if (!result.success) {
  if (/denort|dl\.deno\.land|download|dns|connect|network|tcp/i.test(stderr)) {
    console.error(
      "deno compile needs to download its runtime (denort) from the Deno site, and this " +
        "machine cannot reach it. Run `deno task compile` on a machine that is online (the " +
        "runtime is cached afterwards), or set DENORT_BIN to a local denort binary.",
    );
  } else {
    console.error(stderr);
  }
  Deno.exit(1);
}
console.log(`built ${output}`);
