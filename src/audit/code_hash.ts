import { createHash } from "node:crypto";

/** SHA-256 over the module graph's files (each path, then its bytes), in the order given. */
export async function codeHash(files: readonly string[]): Promise<string> {
  const h = createHash("sha256");
  for (const f of files) {
    h.update(f + "\0");
    h.update(await Deno.readFile(f));
  }
  return h.digest("hex");
}

/** SHA-256 of an argv (its JSON). */
export function argvHash(argv: readonly string[]): string {
  return createHash("sha256").update(JSON.stringify(argv)).digest("hex");
}
