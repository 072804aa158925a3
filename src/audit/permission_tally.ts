import { classifyCheck, type GrantSet, parsePermissionCheck } from "./permission_check.ts";

/** Totals of one (permission, value) pair. */
export interface UsageEntry {
  readonly permission: string;
  readonly value: string;
  readonly granted: boolean;
  count: number;
  /** Milliseconds since the epoch. */
  lastUse: number;
}

/** Options of {@linkcode PermissionTally}. */
export interface PermissionTallyOptions {
  /** Distinct (permission, value) pairs kept; more are only counted in `overflow`. Default 1000. */
  readonly maxEntries?: number;
  /** Lines parsed per second, averaged (bursts of 2 s pass); more are counted, not parsed. Default 5000. */
  readonly linesPerSecond?: number;
  /** Called the first time a denied pair is seen. */
  readonly onDenied?: (entry: UsageEntry) => void;
  /** Clock, for tests. */
  readonly now?: () => number;
}

/**
 * Counts a plugin process's permission checks, bounded in memory (at most `maxEntries` pairs)
 * and in work (a token bucket of `linesPerSecond`): a plugin that checks a million distinct
 * paths costs the host a counter, not a million map entries.
 */
export class PermissionTally {
  readonly #grants: GrantSet;
  readonly #entries = new Map<string, UsageEntry>();
  /** Pairs changed since the last {@linkcode drain}. */
  readonly #dirty = new Map<string, UsageEntry>();
  readonly #max: number;
  readonly #rate: number;
  readonly #onDenied: ((entry: UsageEntry) => void) | undefined;
  readonly #now: () => number;
  #tokens: number;
  #refilled: number;
  /** Checks not kept: distinct pairs past `maxEntries`. */
  overflow = 0;
  /** Lines skipped over the rate, unparsed. */
  skipped = 0;
  /** Lines that were not checks. */
  malformed = 0;

  constructor(grants: GrantSet, options: PermissionTallyOptions = {}) {
    this.#grants = grants;
    this.#max = options.maxEntries ?? 1000;
    this.#rate = options.linesPerSecond ?? 5000;
    if (!(Number.isInteger(this.#max) && this.#max > 0)) {
      throw new RangeError(`maxEntries must be a positive integer, got ${this.#max}`);
    }
    if (!(this.#rate > 0)) throw new RangeError(`linesPerSecond must be > 0, got ${this.#rate}`);
    this.#onDenied = options.onDenied;
    this.#now = options.now ?? Date.now;
    this.#tokens = this.#rate * 2;
    this.#refilled = this.#now();
  }

  /** Adds one line of the audit stream. */
  addLine(line: string): void {
    const now = this.#now();
    this.#tokens = Math.min(
      this.#rate * 2,
      this.#tokens + ((now - this.#refilled) / 1000) * this.#rate,
    );
    this.#refilled = now;
    if (this.#tokens < 1) {
      this.skipped++;
      return;
    }
    this.#tokens--;
    const check = parsePermissionCheck(line);
    if (check === undefined) {
      this.malformed++;
      return;
    }
    const c = classifyCheck(check, this.#grants);
    if (c === undefined) return;
    const key = `${c.permission}\0${c.value}`;
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      if (this.#entries.size >= this.#max) {
        this.overflow++;
        return;
      }
      entry = { ...c, count: 0, lastUse: check.at };
      this.#entries.set(key, entry);
      if (!c.granted) this.#onDenied?.(entry);
    }
    entry.count++;
    entry.lastUse = Math.max(entry.lastUse, check.at);
    const d = this.#dirty.get(key);
    if (d) {
      d.count++;
      d.lastUse = entry.lastUse;
    } else this.#dirty.set(key, { ...entry, count: 1 });
  }

  /** Every pair seen so far. */
  entries(): UsageEntry[] {
    return [...this.#entries.values()].map((e) => ({ ...e }));
  }

  /** The increments since the last drain (for adding to persisted totals), then forgets them. */
  drain(): UsageEntry[] {
    const out = [...this.#dirty.values()];
    this.#dirty.clear();
    return out;
  }
}
