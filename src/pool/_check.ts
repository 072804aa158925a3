/**
 * Up-front checks of the pool's and the jobs' number options.
 *
 * @module
 */

/** Longest setTimeout delay; a deadline further away is checked at dispatch instead. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Checks an integer option (`undefined` passes: the default applies).
 *
 * @throws {RangeError} with the bad value in the message
 */
export function checkCount(name: string, value: number | undefined, min: number): void {
  if (value !== undefined && !(Number.isInteger(value) && value >= min)) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`);
  }
}

/**
 * Checks a number option; durations are capped at the longest `setTimeout` delay.
 *
 * @throws {RangeError} with the bad value in the message
 */
export function checkMs(
  name: string,
  value: number | undefined,
  min: number,
  max = MAX_TIMER_MS,
): void {
  if (value !== undefined && !(Number.isFinite(value) && value >= min && value <= max)) {
    throw new RangeError(`${name} must be a number from ${min} to ${max}, got ${value}`);
  }
}
