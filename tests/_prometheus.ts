/**
 * A strict parser of the Prometheus text format 0.0.4, for the tests of `/metrics`.
 *
 * It is ours: the one npm package for the text format (`parse-prometheus-text-format` 1.1.1)
 * accepts `garbage line here {` as a sample and `notanumber` as a value, and drops every
 * labelled histogram series after the first, so a test built on it could not fail on the
 * faults it is meant to catch.
 *
 * @module
 */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  help?: string;
  type?: string;
  readonly samples: Sample[];
}

const METRIC_NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL_NAME = "[a-zA-Z_][a-zA-Z0-9_]*";
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

/**
 * Parses the text exposition format strictly: every line is a HELP, TYPE, comment, blank or
 * sample line; names, labels, escapes and values are checked; a family's TYPE comes before its
 * samples and its samples are contiguous; no series appears twice; histograms have `le` on
 * every bucket, cumulative counts, a `+Inf` bucket equal to `_count`, and `_sum`.
 *
 * @throws {SyntaxError} naming the line
 */
export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: Family | undefined;
  const closed = new Set<string>();
  const familyOf = (name: string): Family => {
    let f = families.get(name);
    if (f === undefined) {
      if (closed.has(name)) throw new Error(`family ${name} is not contiguous`);
      f = { name, samples: [] };
      families.set(name, f);
    }
    if (current !== undefined && current !== f) closed.add(current.name);
    current = f;
    return f;
  };
  if (!text.endsWith("\n")) throw new SyntaxError("the exposition must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    if (line === "") return;
    const meta = new RegExp(`^# (HELP|TYPE) (${METRIC_NAME})(?: (.*))?$`).exec(line);
    if (meta) {
      const [, kind, name, rest = ""] = meta;
      const f = familyOf(name!);
      if (kind === "HELP") {
        if (f.help !== undefined) throw new SyntaxError(`second HELP, ${where}`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) {
          throw new SyntaxError(`bad escape, ${where}`);
        }
        f.help = rest;
      } else {
        if (f.type !== undefined || f.samples.length > 0) {
          throw new SyntaxError(`late TYPE, ${where}`);
        }
        if (!TYPES.has(rest)) throw new SyntaxError(`unknown type, ${where}`);
        f.type = rest;
      }
      return;
    }
    if (line.startsWith("#")) return;
    const m = new RegExp(`^(${METRIC_NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`).exec(line);
    if (m === null) throw new SyntaxError(`not a sample, ${where}`);
    const [, name, labelText = "", valueText] = m;
    if (!FLOAT.test(valueText!)) throw new SyntaxError(`bad value, ${where}`);
    const labels = parseLabels(labelText, where);
    const family = familyFor(families, current, name!);
    if (family === undefined) throw new SyntaxError(`sample outside its family, ${where}`);
    const key = `${name}{${Object.entries(labels).sort().map(([k, v]) => `${k}=${v}`).join(",")}}`;
    if (seen.has(key)) throw new SyntaxError(`duplicate series, ${where}`);
    seen.add(key);
    const value = valueText === "+Inf" || valueText === "Inf"
      ? Infinity
      : valueText === "-Inf"
      ? -Infinity
      : Number(valueText);
    family.samples.push({ name: name!, labels, value });
  });
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

/** The family a sample belongs to: its own name, or a histogram/summary's suffixed series. */
function familyFor(
  families: Map<string, Family>,
  current: Family | undefined,
  name: string,
): Family | undefined {
  if (current === undefined) return undefined;
  if (current.name === name && current.type !== "histogram") return current;
  if (current.type === "histogram" || current.type === "summary") {
    const suffixes = current.type === "histogram"
      ? ["_bucket", "_sum", "_count"]
      : ["_sum", "_count", ""];
    if (suffixes.some((s) => name === current.name + s)) return current;
  }
  return families.get(name) === current ? current : undefined;
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text === "") return labels;
  const re = new RegExp(`(${LABEL_NAME})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"(,|$)`, "y");
  let last = "";
  while (re.lastIndex < text.length) {
    const m = re.exec(text);
    if (m === null) throw new SyntaxError(`bad labels, ${where}`);
    const [, name, raw, comma] = m;
    if (name! in labels) throw new SyntaxError(`label ${name} twice, ${where}`);
    labels[name!] = raw!.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    last = comma!;
  }
  if (last === ",") throw new SyntaxError(`trailing comma, ${where}`);
  return labels;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const entry = series.get(key) ?? { buckets: [] };
    series.set(key, entry);
    if (s.name.endsWith("_bucket")) {
      if (le === undefined || !FLOAT.test(le)) {
        throw new SyntaxError(`${f.name}: bucket without le`);
      }
      entry.buckets.push([le === "+Inf" ? Infinity : Number(le), s.value]);
    } else if (le !== undefined) {
      throw new SyntaxError(`${s.name}: le on a non-bucket sample`);
    } else if (s.name.endsWith("_sum")) entry.sum = s.value;
    else entry.count = s.value;
  }
  for (const [key, e] of series) {
    const where = `${f.name}${key}`;
    if (e.sum === undefined || e.count === undefined) {
      throw new SyntaxError(`${where}: no _sum/_count`);
    }
    const last = e.buckets.at(-1);
    if (last?.[0] !== Infinity || last[1] !== e.count) {
      throw new SyntaxError(`${where}: +Inf != _count`);
    }
    for (let i = 1; i < e.buckets.length; i++) {
      const [le0, c0] = e.buckets[i - 1]!;
      const [le1, c1] = e.buckets[i]!;
      if (!(le1 > le0) || c1 < c0) throw new SyntaxError(`${where}: buckets not cumulative`);
    }
  }
}
