import { extname, isAbsolute, join, relative, resolve } from "node:path";
import {
  formatPath,
  parseYamlSource,
  readLimited,
  validateSource,
  type YamlSource,
} from "../config/mod.ts";
import { manifestSchemaProblems } from "../schema/manifest_schemas.ts";
import { asManifestError, ManifestError } from "./manifest_error.ts";
import { type Manifest, ManifestSchema } from "./schema.ts";

/** The manifest file name inside a plugin folder. */
export const MANIFEST_FILE = "manifest.yaml";

const ENTRY_EXTENSIONS = new Set([".ts", ".mts", ".js", ".mjs", ".tsx", ".jsx"]);

/** A plugin folder whose manifest is valid. */
export interface PluginDescriptor {
  /** `plugin.name` from the manifest. */
  readonly name: string;
  /** Absolute, symlink-free path of the plugin folder. */
  readonly dir: string;
  /** Absolute path of `manifest.yaml`. */
  readonly manifestFile: string;
  /** The validated manifest. */
  readonly manifest: Manifest;
  /** Absolute, symlink-free path of the entrypoint, inside `dir`. */
  readonly entrypoint: string;
}

/** Whether `child` is `parent` or lies inside it (both absolute, normalised). */
export function isInside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (rel !== ".." && !rel.startsWith("../") && !isAbsolute(rel));
}

/**
 * Reads and validates `<dir>/manifest.yaml` (1 MiB, alias and depth limits; unknown keys are
 * errors) and checks the entrypoint stays inside the folder.
 *
 * @throws {ManifestError} naming the file, YAML path, line and reason
 */
export async function loadManifest(dir: string): Promise<PluginDescriptor> {
  const realDir = await Deno.realPath(dir).catch((cause) => {
    throw new ManifestError("MANIFEST_NOT_FOUND", `${dir}: plugin folder not found`, [], { cause });
  });
  const manifestFile = join(realDir, MANIFEST_FILE);
  let source: YamlSource;
  let manifest: Manifest;
  try {
    const text = await readLimited(manifestFile, 1024 * 1024, "manifest");
    source = parseYamlSource(text, manifestFile, {}, "manifest");
    manifest = validateSource(ManifestSchema, source, {
      code: "MANIFEST_INVALID",
      kind: "manifest",
    });
  } catch (e) {
    throw asManifestError(e);
  }
  // Every JSON Schema in it must stay within what the validator checks: nothing silently unchecked.
  const schemaProblems = manifestSchemaProblems(manifest);
  if (schemaProblems.length > 0) {
    throw new ManifestError(
      "MANIFEST_INVALID",
      `${manifestFile}: unsupported JSON Schema`,
      schemaProblems.map((p) => ({
        file: manifestFile,
        path: formatPath(p.at),
        ...source.locate(p.at),
        message: p.message,
        expected: "the JSON Schema subset of the README (Typed methods)",
      })),
    );
  }
  const entrypoint = await checkEntrypoint(realDir, manifest.plugin.entrypoint, source);
  return { name: manifest.plugin.name, dir: realDir, manifestFile, manifest, entrypoint };
}

async function checkEntrypoint(dir: string, entry: string, source: YamlSource): Promise<string> {
  const fail = (message: string, cause?: unknown): never => {
    throw new ManifestError("ENTRYPOINT_INVALID", `${source.file}: invalid entrypoint`, [{
      file: source.file,
      path: "plugin.entrypoint",
      ...source.locate(["plugin", "entrypoint"]),
      found: JSON.stringify(entry),
      expected: "a relative path to a .ts or .js file inside the plugin folder, e.g. ./main.ts",
      message,
    }], { cause });
  };
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(entry)) {
    fail("URLs and npm:/jsr:/file: specifiers are not allowed");
  }
  if (isAbsolute(entry) || entry.startsWith("\\")) fail("absolute paths are not allowed");
  if (entry.split(/[\\/]/).includes("..")) {
    fail("'..' is not allowed: the entrypoint must stay in the plugin folder");
  }
  if (!ENTRY_EXTENSIONS.has(extname(entry))) {
    fail(`unsupported extension ${JSON.stringify(extname(entry))}`);
  }
  let real = "";
  try {
    real = await Deno.realPath(resolve(dir, entry));
  } catch (cause) {
    fail("file not found", cause);
  }
  if (!isInside(real, dir)) {
    fail(`it resolves (through a symlink) outside the plugin folder, to ${real}`);
  }
  const info = await Deno.stat(real);
  if (!info.isFile) fail("not a regular file");
  return real;
}
