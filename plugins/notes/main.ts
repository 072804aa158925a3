import { serve } from "plugsconc/sdk";

// The host grants this plugin its private data folder (${DATA_DIR} in the manifest) and tells
// it where that is in PLUGSCONC_DATA_DIR.
const dir = Deno.env.get("PLUGSCONC_DATA_DIR");

interface Note {
  id: string;
  text: string;
  created: string;
}

function notesDir(): string {
  if (!dir) {
    throw new Error("PLUGSCONC_DATA_DIR is not set; run this plugin with the plugsconc host");
  }
  return dir;
}

serve({
  methods: {
    async add({ text }: { text?: unknown } = {}) {
      if (typeof text !== "string" || text.length === 0 || text.length > 10_000) {
        throw new Error("add needs { text: string } of 1 to 10000 characters");
      }
      const note: Note = { id: crypto.randomUUID(), text, created: new Date().toISOString() };
      await Deno.writeTextFile(`${notesDir()}/${note.id}.json`, JSON.stringify(note));
      return note;
    },
    async list() {
      const notes: Note[] = [];
      for await (const e of Deno.readDir(notesDir())) {
        if (e.isFile && e.name.endsWith(".json")) {
          notes.push(JSON.parse(await Deno.readTextFile(`${notesDir()}/${e.name}`)));
        }
      }
      return notes.sort((a, b) => a.created.localeCompare(b.created));
    },
    async remove({ id }: { id?: unknown } = {}) {
      if (typeof id !== "string" || !/^[0-9a-f-]{36}$/.test(id)) {
        throw new Error("remove needs { id }");
      }
      await Deno.remove(`${notesDir()}/${id}.json`).catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      });
      return { removed: id };
    },
  },
});
