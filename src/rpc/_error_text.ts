/** The message of anything thrown: an `Error`'s, a string itself, a `message` field, or `String()`. */
export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "string") return error;
  if (
    typeof error === "object" && error !== null &&
    typeof (error as { message?: unknown }).message === "string"
  ) {
    return (error as { message: string }).message;
  }
  return String(error);
}

/** A received line as error messages and details quote it: at most 120 characters. */
export function preview(line: string): string {
  return line.length <= 120 ? line : `${line.slice(0, 117)}...`;
}

/** The JSON type of a parsed value, for messages: `typeof`, except `"null"` for `null`. */
export function typeOf(value: unknown): string {
  return value === null ? "null" : typeof value;
}

/** Characters of a method name that messages quote; the rest is cut and marked. */
export const MAX_QUOTED_METHOD = 200;

/** Longest string id accepted in a request: a longer one is an Invalid Request (id `null`). */
export const MAX_ID_LENGTH = 256;

/** `text` as messages quote it (method names, ids): at most `max` characters, cut marked. */
export function clipText(text: string, max: number = MAX_QUOTED_METHOD): string {
  return text.length <= max ? text : `${text.slice(0, max)}…[${text.length} characters]`;
}

/** `JSON.stringify(id)` of a received id, at most about 200 characters. */
export function quoteId(id: unknown): string {
  return typeof id === "string" && id.length > MAX_QUOTED_METHOD
    ? `${JSON.stringify(id.slice(0, MAX_QUOTED_METHOD))}…[${id.length} characters]`
    : String(JSON.stringify(id));
}
