// Beyond what JSON.stringify escapes: DEL, the C1 controls (0x9b is a one-byte CSI in some
// terminals, 0x85 a YAML 1.1 line break) and the Unicode line and paragraph separators.
const MORE = /[\x7f-\x9f\u2028\u2029]/g;

/**
 * `value` as a JSON string literal with every control character escaped: inert in a
 * terminal, on one line, and the same string when read back as JSON or as a YAML
 * double-quoted scalar. For values a plugin controls (paths it tried, its manifest's text).
 */
export function quoted(value: string): string {
  return JSON.stringify(value).replace(
    MORE,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** {@linkcode quoted} without the quotes: for free text (a reason that may embed a value). */
export function inert(text: string): string {
  return quoted(text).slice(1, -1);
}
