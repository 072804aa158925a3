import { serve } from "plugsconc/sdk";

serve({
  // Sent in $/ready: the host refuses this code under another plugin's name.
  name: "dog",
  version: "1.0.3",
  methods: {
    speak: ({ loud }: { loud?: boolean } = {}) => ({ sound: loud ? "WOOF!" : "woof" }),
  },
  health: () => ({ status: "healthy" }),
});
