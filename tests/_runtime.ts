/**
 * Helpers of the runtime tests (`runtime_test.ts`, `runtime_logs_test.ts`).
 *
 * @module
 */
import { join } from "node:path";
import { FIXTURE_PLUGINS, makeHome, pidAlive, type TestHome, waitFor } from "./_helpers.ts";

export const BEHAVE = join(FIXTURE_PLUGINS, "behave");
/**
 * Hot reload is not what these tests are about: the plugins folder is not watched, except in
 * the test of stopping right after start, which runs with the default (watched).
 */
export const NO_WATCH = { watcher: { enabled: false } };

/** A home with `behave` (and any other plugin folders given). */
export async function homeWith(
  config: Record<string, unknown> = {},
  extra: string[] = [],
): Promise<TestHome> {
  const home = await makeHome({ ...NO_WATCH, ...config });
  await home.addPlugin(BEHAVE);
  for (const source of extra) await home.addPlugin(source);
  return home;
}

/** Every pid, gone within `ms`. */
export function allGone(pids: readonly number[], ms = 2000): Promise<boolean> {
  return waitFor(() => pids.every((pid) => !pidAlive(pid)), ms);
}
