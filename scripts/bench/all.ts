/**
 * `deno task bench`: runs every benchmark in this folder in turn; each prints one JSON object.
 *
 * @module
 */
const here = new URL(".", import.meta.url);
const names = [...Deno.readDirSync(here)]
  .map((e) => e.name)
  .filter((n) => n.endsWith(".ts") && n !== "all.ts" && !n.startsWith("_"))
  .sort();
let failed = 0;
for (const name of names) {
  console.error(`# ${name}`);
  const { success } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(name, here).pathname],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!success) failed++;
}
Deno.exit(failed === 0 ? 0 : 1);
