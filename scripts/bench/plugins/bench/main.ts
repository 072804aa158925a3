import { serve } from "plugsconc/sdk";

serve({
  methods: {
    echo: (params: unknown) => params ?? null,
  },
});
