import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { isCompiledBinary } from "../runtime/mod.ts";

/**
 * Folders of `src/` that make up the SDK's module graph (the SDK imports rpc, errors and the
 * JSON Schema validator).
 */
const SDK_FOLDERS = ["sdk", "rpc", "errors", "schema"] as const;

/**
 * The SDK entry (`src/sdk/mod.ts`) as a file plugins can import. Under `deno run` it is the
 * source file; in a compiled binary the embedded copies are written below `runtimeDir` so the
 * plugin's own `deno` can load them.
 */
export async function materializeSdk(runtimeDir: string): Promise<string> {
  const entry = fileURLToPath(import.meta.resolve("../sdk/mod.ts"));
  if (!isCompiledBinary()) return entry;
  const srcDir = dirname(dirname(entry));
  const outDir = join(runtimeDir, "sdk-src");
  for (const folder of SDK_FOLDERS) {
    await Deno.mkdir(join(outDir, folder), { recursive: true });
    for await (const e of Deno.readDir(join(srcDir, folder))) {
      if (!e.isFile || !e.name.endsWith(".ts") || e.name.endsWith("_test.ts")) continue;
      const text = await Deno.readTextFile(join(srcDir, folder, e.name));
      await writeIfChanged(join(outDir, folder, e.name), text);
    }
  }
  return join(outDir, relative(srcDir, entry));
}

/** Writes `text` unless the file already holds exactly it. */
export async function writeIfChanged(path: string, text: string): Promise<void> {
  const old = await Deno.readTextFile(path).catch(() => undefined);
  if (old !== text) await Deno.writeTextFile(path, text);
}
