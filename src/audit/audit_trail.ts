import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { AuditError } from "./audit_error.ts";
import type { TallyGaps } from "./permission_tally.ts";

/** One security event as stored: `hash` = SHA-256 of `prev_hash` and the row's fields. */
export interface AuditRow {
  readonly id: number;
  /** Milliseconds since the epoch. */
  readonly ts: number;
  /** What happened, e.g. `plugin.start`, `permission.denied`, `gateway.auth_failed`. */
  readonly kind: string;
  /** The plugin concerned, if any. */
  readonly plugin: string | null;
  /** Which process wrote it (`run`, `call`, `plugins inspect`, a library host...). */
  readonly actor: string;
  /** The event's fields as JSON text. */
  readonly detail: string;
  readonly prevHash: string;
  readonly hash: string;
}

/** An event to append. */
export interface AuditEvent {
  readonly kind: string;
  readonly plugin?: string;
  readonly detail?: Readonly<Record<string, unknown>>;
}

/** Filters of {@linkcode AuditTrail.query}; each field narrows, none means all. */
export interface AuditQuery {
  readonly plugin?: string;
  /** Exact kind, or a prefix ending in `.` (`plugin.`). */
  readonly kind?: string;
  /** Milliseconds since the epoch, inclusive. */
  readonly since?: number;
  readonly until?: number;
  /** Substring of the detail JSON. */
  readonly grep?: string;
  /** Newest rows kept; default 100. */
  readonly limit?: number;
}

/** What {@linkcode AuditTrail.verify} found. */
export interface AuditVerdict {
  readonly ok: boolean;
  readonly rows: number;
  /** The first row whose stored hash or link does not match, and why. */
  readonly broken?: { readonly id: number; readonly reason: string };
}

const GENESIS = "0".repeat(64);

/** The hash of a row: its predecessor's hash and every field but `hash`, in a fixed order. */
export function rowHash(row: Omit<AuditRow, "hash">): string {
  return createHash("sha256")
    .update(
      JSON.stringify([row.prevHash, row.id, row.ts, row.kind, row.plugin, row.actor, row.detail]),
    )
    .digest("hex");
}

/**
 * The append-only audit trail (`dirs.data/audit.db`): security events, each row carrying the
 * hash of the previous one, so an edited, inserted or deleted row breaks the chain at that
 * row. Writes are synchronous and rare (starts, stops, refusals, rate-limited denials); several
 * processes may append at once (`BEGIN IMMEDIATE` serialises reading the last hash).
 *
 * @example
 * ```ts
 * using trail = AuditTrail.open("data/audit.db", { actor: "run" });
 * trail.append({ kind: "plugin.start", plugin: "cat", detail: { argvSha256 } });
 * console.log(trail.verify().ok);
 * ```
 */
export class AuditTrail implements Disposable {
  readonly path: string;
  readonly #db: DatabaseSync;
  readonly #actor: string;
  #closed = false;

  private constructor(path: string, db: DatabaseSync, actor: string) {
    this.path = path;
    this.#db = db;
    this.#actor = actor;
  }

  /**
   * Opens (creating) the trail at `path`.
   *
   * @param options.actor who writes (default `host`)
   * @param options.readOnly open for `verify`/`query` only; the file must exist (default false)
   * @throws {AuditError} `AUDIT_OPEN` when the file cannot be opened or created, or (read-only)
   *   holds no audit trail: empty, corrupt, or another database
   */
  static open(path: string, options: { actor?: string; readOnly?: boolean } = {}): AuditTrail {
    let db: DatabaseSync | undefined;
    try {
      if (!options.readOnly) Deno.mkdirSync(dirname(path), { recursive: true });
      db = new DatabaseSync(path, { timeout: 2000, readOnly: options.readOnly ?? false });
      if (!options.readOnly) {
        db.exec("PRAGMA journal_mode = WAL");
        db.exec(`CREATE TABLE IF NOT EXISTS audit (
          id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, kind TEXT NOT NULL, plugin TEXT,
          actor TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`);
        db.exec(`CREATE TABLE IF NOT EXISTS permission_usage (
          plugin TEXT NOT NULL, permission TEXT NOT NULL, value TEXT NOT NULL,
          granted INTEGER NOT NULL, count INTEGER NOT NULL, last_use INTEGER NOT NULL,
          PRIMARY KEY (plugin, permission, value))`);
      } else {
        try {
          // Opening never reads the file: an empty or foreign file fails only here.
          db.prepare(
            "SELECT id, ts, kind, plugin, actor, detail, prev_hash, hash FROM audit LIMIT 1",
          ).all();
        } catch (cause) {
          throw new AuditError(
            "AUDIT_OPEN",
            `${path} is not a plugsconc audit trail (${(cause as Error).message}): it is ` +
              "empty, corrupt or another file; move it aside (keep a copy as evidence) and the " +
              "host starts a new trail there, or check dirs.data",
            { path, cause },
          );
        }
      }
      return new AuditTrail(path, db, options.actor ?? "host");
    } catch (cause) {
      try {
        db?.close();
      } catch { /* not open */ }
      if (cause instanceof AuditError) throw cause;
      throw new AuditError(
        "AUDIT_OPEN",
        `cannot open the audit trail ${path}: ${(cause as Error).message}; check dirs.data ` +
          "(a corrupt file: move it aside and the host starts a new trail)",
        { path, cause },
      );
    }
  }

  /** Appends one event, linked to the last row. */
  append(event: AuditEvent): AuditRow {
    const db = this.#db;
    db.exec("BEGIN IMMEDIATE");
    try {
      const last = db.prepare("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").get() as
        | { id: number; hash: string }
        | undefined;
      const base = {
        id: (last?.id ?? 0) + 1,
        ts: Date.now(),
        kind: event.kind,
        plugin: event.plugin ?? null,
        actor: this.#actor,
        detail: JSON.stringify(event.detail ?? {}),
        prevHash: last?.hash ?? GENESIS,
      };
      const row = { ...base, hash: rowHash(base) };
      db.prepare(
        "INSERT INTO audit (id, ts, kind, plugin, actor, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?)",
      ).run(row.id, row.ts, row.kind, row.plugin, row.actor, row.detail, row.prevHash, row.hash);
      db.exec("COMMIT");
      return row;
    } catch (e) {
      db.exec("ROLLBACK");
      throw e;
    }
  }

  /**
   * Walks the chain from the first row: each row's hash must match its fields, its `prev_hash`
   * the row before, and ids must follow without a gap (a deleted last row cannot be told from
   * one never written; the id gap catches any other deletion).
   */
  verify(): AuditVerdict {
    let prev = GENESIS;
    let expectId = 1;
    let rows = 0;
    for (const r of this.#db.prepare("SELECT * FROM audit ORDER BY id").iterate()) {
      const row = fromDb(r as Record<string, unknown>);
      rows++;
      if (row.id !== expectId) {
        return {
          ok: false,
          rows,
          broken: { id: expectId, reason: `row ${expectId} is missing (deleted)` },
        };
      }
      if (row.prevHash !== prev) {
        return { ok: false, rows, broken: { id: row.id, reason: "prev_hash does not link" } };
      }
      if (rowHash(row) !== row.hash) {
        return { ok: false, rows, broken: { id: row.id, reason: "row was edited" } };
      }
      prev = row.hash;
      expectId++;
    }
    return { ok: true, rows };
  }

  /** Rows matching `q`, oldest first (the newest `limit`). */
  query(q: AuditQuery = {}): AuditRow[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.plugin !== undefined) where.push("plugin = ?"), args.push(q.plugin);
    if (q.kind !== undefined) {
      if (q.kind.endsWith(".")) {
        where.push("substr(kind, 1, ?) = ?"), args.push(q.kind.length, q.kind);
      } else where.push("kind = ?"), args.push(q.kind);
    }
    if (q.since !== undefined) where.push("ts >= ?"), args.push(q.since);
    if (q.until !== undefined) where.push("ts <= ?"), args.push(q.until);
    if (q.grep !== undefined) where.push("instr(detail, ?) > 0"), args.push(q.grep);
    const limit = q.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`limit must be >= 1, got ${limit}`);
    }
    const sql = `SELECT * FROM audit ${where.length ? "WHERE " + where.join(" AND ") : ""} ` +
      "ORDER BY id DESC LIMIT ?";
    const rows = this.#db.prepare(sql).all(...args, limit) as Record<string, unknown>[];
    return rows.map(fromDb).reverse();
  }

  /** Adds `count` checks of `permission`/`value` to the plugin's usage totals. */
  addUsage(
    plugin: string,
    entries: Iterable<
      { permission: string; value: string; granted: boolean; count: number; lastUse: number }
    >,
  ): void {
    const st = this.#db.prepare(
      `INSERT INTO permission_usage (plugin, permission, value, granted, count, last_use)
       VALUES (?,?,?,?,?,?) ON CONFLICT (plugin, permission, value) DO UPDATE SET
       count = count + excluded.count, last_use = max(last_use, excluded.last_use),
       granted = excluded.granted`,
    );
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      for (const e of entries) {
        st.run(plugin, e.permission, e.value, e.granted ? 1 : 0, e.count, e.lastUse);
      }
      this.#db.exec("COMMIT");
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
  }

  /** The plugin's usage totals, every check the runtime reported. */
  usage(
    plugin: string,
  ): { permission: string; value: string; granted: boolean; count: number; lastUse: number }[] {
    let rows: Record<string, unknown>[];
    try {
      rows = this.#db.prepare(
        "SELECT * FROM permission_usage WHERE plugin = ? ORDER BY permission, value",
      ).all(plugin) as Record<string, unknown>[];
    } catch {
      return []; // a read-only trail written before usage was kept
    }
    return rows.map((r) => ({
      permission: String(r.permission),
      value: String(r.value),
      granted: r.granted === 1,
      count: Number(r.count),
      lastUse: Number(r.last_use),
    }));
  }

  /**
   * The sums of the plugin's `permission.audit_incomplete` events: checks its usage totals do
   * not hold (all zero when every check was counted).
   */
  gaps(plugin: string): TallyGaps {
    const sum = { overflow: 0, deniedOverflow: 0, skipped: 0, malformed: 0 };
    const rows = this.#db.prepare(
      "SELECT detail FROM audit WHERE kind = 'permission.audit_incomplete' AND plugin = ?",
    ).iterate(plugin);
    for (const r of rows) {
      let d: unknown;
      try {
        d = JSON.parse(String((r as Record<string, unknown>).detail));
      } catch {
        continue; // an edited row: `audit verify` reports it
      }
      for (const k of Object.keys(sum) as (keyof TallyGaps)[]) {
        const n = (d as Record<string, unknown> | null)?.[k];
        if (typeof n === "number" && Number.isFinite(n) && n > 0) sum[k] += n;
      }
    }
    return sum;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function fromDb(r: Record<string, unknown>): AuditRow {
  return {
    id: Number(r.id),
    ts: Number(r.ts),
    kind: String(r.kind),
    plugin: r.plugin === null ? null : String(r.plugin),
    actor: String(r.actor),
    detail: String(r.detail),
    prevHash: String(r.prev_hash),
    hash: String(r.hash),
  };
}
