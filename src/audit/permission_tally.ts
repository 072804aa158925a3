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

/**
 * What a tally did not keep or could not examine: a report built from its totals is
 * incomplete by these counts.
 */
export interface TallyGaps {
  /** Granted checks not kept: distinct granted pairs past `maxEntries`. */
  readonly overflow: number;
  /** Denied checks not kept: distinct denied pairs past `maxDenied` (still reported to `onDenied`). */
  readonly deniedOverflow: number;
  /** Lines skipped over the rate, unparsed: granted or denied, nobody knows. */
  readonly skipped: number;
  /** Lines that were not checks. */
  readonly malformed: number;
}

/** Options of {@linkcode PermissionTally}. */
export interface PermissionTallyOptions {
  /** Distinct granted (permission, value) pairs kept; more are only counted in `overflow`. Default 1000. */
  readonly maxEntries?: number;
  /**
   * Distinct denied pairs kept, apart from the granted ones (a flood of granted checks cannot
   * push a denial out); more are counted in `deniedOverflow`. Default 1000.
   */
  readonly maxDenied?: number;
  /** Lines parsed per second, averaged (bursts of 2 s pass); more are counted, not parsed. Default 5000. */
  readonly linesPerSecond?: number;
  /**
   * Called the first time a denied pair is seen, and for every check of a denied pair past
   * `maxDenied` (the caller caps the events it writes).
   */
  readonly onDenied?: (entry: UsageEntry) => void;
  /**
   * Values whose checks are the host's, not the plugin's, and are not counted: the path of its
   * protocol socket (`read`, `write`) and `unix:<path>` (`net`).
   */
  readonly ignore?: readonly string[];
  /** Clock, for tests. */
  readonly now?: () => number;
}

/**
 * Counts a plugin process's permission checks, bounded in memory (at most `maxEntries` granted
 * and `maxDenied` denied pairs) and in work (a token bucket of `linesPerSecond`): a plugin that
 * checks a million distinct paths costs the host a counter, not a million map entries. What
 * it drops is counted ({@linkcode TallyGaps}) so that a report can say it is incomplete.
 */
export class PermissionTally {
  readonly #grants: GrantSet;
  readonly #granted = new Map<string, UsageEntry>();
  readonly #denied = new Map<string, UsageEntry>();
  /** Pairs changed since the last {@linkcode drain}. */
  readonly #dirty = new Map<string, UsageEntry>();
  readonly #max: number;
  readonly #maxDenied: number;
  readonly #rate: number;
  readonly #onDenied: ((entry: UsageEntry) => void) | undefined;
  readonly #ignore: ReadonlySet<string>;
  readonly #now: () => number;
  #tokens: number;
  #refilled: number;
  /** Granted checks not kept: distinct granted pairs past `maxEntries`. */
  overflow = 0;
  /** Denied checks not kept: distinct denied pairs past `maxDenied`. */
  deniedOverflow = 0;
  /** Lines skipped over the rate, unparsed. */
  skipped = 0;
  /** Lines that were not checks. */
  malformed = 0;

  constructor(grants: GrantSet, options: PermissionTallyOptions = {}) {
    this.#grants = grants;
    this.#max = options.maxEntries ?? 1000;
    this.#maxDenied = options.maxDenied ?? 1000;
    this.#rate = options.linesPerSecond ?? 5000;
    for (const [name, v] of [["maxEntries", this.#max], ["maxDenied", this.#maxDenied]] as const) {
      if (!(Number.isInteger(v) && v > 0)) {
        throw new RangeError(`${name} must be a positive integer, got ${v}`);
      }
    }
    if (!(this.#rate > 0)) throw new RangeError(`linesPerSecond must be > 0, got ${this.#rate}`);
    this.#onDenied = options.onDenied;
    this.#ignore = new Set(options.ignore ?? []);
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
    if (c === undefined || this.#ignore.has(c.value)) return;
    const key = `${c.permission}\0${c.value}`;
    // Classified before the bound: granted and denied pairs are kept apart.
    const entries = c.granted ? this.#granted : this.#denied;
    let entry = entries.get(key);
    if (entry === undefined) {
      const fresh = { ...c, count: 1, lastUse: check.at };
      if (entries.size >= (c.granted ? this.#max : this.#maxDenied)) {
        if (c.granted) this.overflow++;
        else {
          this.deniedOverflow++;
          this.#onDenied?.(fresh);
        }
        return;
      }
      entry = { ...fresh, count: 0 };
      entries.set(key, entry);
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

  /** What was not kept or not examined so far. */
  gaps(): TallyGaps {
    return {
      overflow: this.overflow,
      deniedOverflow: this.deniedOverflow,
      skipped: this.skipped,
      malformed: this.malformed,
    };
  }

  /** Every pair kept so far, granted ones first. */
  entries(): UsageEntry[] {
    return [...this.#granted.values(), ...this.#denied.values()].map((e) => ({ ...e }));
  }

  /** The increments since the last drain (for adding to persisted totals), then forgets them. */
  drain(): UsageEntry[] {
    const out = [...this.#dirty.values()];
    this.#dirty.clear();
    return out;
  }
}
