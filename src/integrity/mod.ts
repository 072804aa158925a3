/**
 * Plugin integrity: the SHA-256 checksum of a plugin folder (every file and symlink in it but
 * the checksum file; the manifest with its `security.checksum` value zeroed), computed as
 * worker pool jobs (each file streamed),
 * written to `<entrypoint>.sha256`, and verified against that file and the manifest's
 * `security.checksum`.
 *
 * @module
 */
export {
  type ChecksumOptions,
  checksumPlugin,
  combineFileDigests,
  digestPlugin,
  type FileDigest,
  manifestHashBytes,
  type PluginDigest,
  ZERO_CHECKSUM,
} from "./checksum_plugin.ts";
export {
  type ChecksumFile,
  checksumFilePath,
  parseChecksumFile,
  readChecksumFile,
  writeChecksumFile,
} from "./checksum_file.ts";
export {
  HASH_CHUNK_BYTES,
  HASH_JOB_URL,
  hashFile,
  type HashFileInput,
  type HashFileOutput,
} from "./hash_job.ts";
export { IntegrityError, type IntegrityErrorCode } from "./integrity_error.ts";
export {
  listPluginFiles,
  MAX_PLUGIN_ENTRIES,
  type PluginEntry,
  type PluginFilesOptions,
} from "./plugin_files.ts";
export {
  assertVerified,
  type ExpectedChecksum,
  verifyPlugin,
  type VerifyResult,
  type VerifyStatus,
} from "./verify_plugin.ts";
