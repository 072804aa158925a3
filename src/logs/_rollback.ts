import type { DatabaseSync } from "node:sqlite";

/**
 * Rolls back the transaction open on `db`, if any, after a failed statement (SQLite may have
 * rolled it back already). Private to `src/logs/`.
 */
export function rollback(db: DatabaseSync): void {
  try {
    if (db.isTransaction) db.exec("ROLLBACK");
  } catch { /* SQLite rolled back already */ }
}
