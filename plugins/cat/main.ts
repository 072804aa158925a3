import { serve } from "plugsconc/sdk";

serve({
  methods: {
    speak: ({ loud }: { loud?: boolean } = {}) => ({ sound: loud ? "MEOW!" : "meow" }),
  },
});
