/**
 * The plugins-folder watcher: `Deno.watchFs` events coalesced into one change batch per
 * plugin folder, with ignore patterns and re-watching of a deleted and recreated root.
 *
 * @module
 */
export { isIgnored, matchSegment } from "./glob.ts";
export { type ChangeBatch, PluginWatcher, type PluginWatcherOptions } from "./plugin_watcher.ts";
