/**
 * `deno task schema`: writes `schemas/config.schema.json` from the zod schema, for editor
 * completion (`# yaml-language-server: $schema=./schemas/config.schema.json`).
 *
 * @module
 */
import { z } from "zod";
import { ConfigSchema } from "../src/config/mod.ts";

const out = new URL("../schemas/config.schema.json", import.meta.url);
const schema = {
  ...z.toJSONSchema(ConfigSchema, { io: "input", unrepresentable: "any" }),
  title: "plugsconc config.yaml",
};
await Deno.writeTextFile(out, JSON.stringify(schema, null, 2) + "\n");
console.log(`wrote ${out.pathname}`);
