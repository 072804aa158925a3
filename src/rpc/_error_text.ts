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
