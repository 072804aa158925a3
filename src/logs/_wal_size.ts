/**
 * Bytes of the write-ahead log of the database at `path` (0 when there is none). Private to
 * `src/logs/`.
 */
export function walSize(path: string): number {
  try {
    return Deno.statSync(`${path}-wal`).size;
  } catch {
    return 0;
  }
}
