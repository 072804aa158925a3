/**
 * Whether one path segment matches a simple pattern: `*` matches any run of characters,
 * `?` one character; everything else is literal.
 */
export function matchSegment(pattern: string, segment: string): boolean {
  let re = "^";
  for (const ch of pattern) {
    if (ch === "*") re += ".*";
    else if (ch === "?") re += ".";
    else re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(re + "$").test(segment);
}

/** Whether any segment of `relativePath` matches any of `patterns`. */
export function isIgnored(relativePath: string, patterns: readonly string[]): boolean {
  const segments = relativePath.split(/[\\/]/).filter((s) => s !== "");
  return segments.some((seg) => patterns.some((p) => matchSegment(p, seg)));
}
