import { serve } from "plugsconc/sdk";

serve({
  // Sent in $/ready: the host refuses this code under another plugin's name.
  name: "cat",
  version: "1.2.0",
  methods: {
    speak: ({ loud }: { loud?: boolean } = {}) => ({ sound: loud ? "MEOW!" : "meow" }),
  },
});
