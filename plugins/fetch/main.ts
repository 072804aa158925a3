import { serve } from "plugsconc/sdk";

const MAX_BODY = 1024 * 1024;

serve({
  methods: {
    async get({ url }: { url?: unknown } = {}, { signal }) {
      if (typeof url !== "string") throw new Error("get needs { url: string }");
      const res = await fetch(url, { signal, redirect: "manual" });
      const body = await res.text();
      return {
        status: res.status,
        contentType: res.headers.get("content-type"),
        body: body.length > MAX_BODY ? body.slice(0, MAX_BODY) : body,
        truncated: body.length > MAX_BODY,
      };
    },
  },
});
