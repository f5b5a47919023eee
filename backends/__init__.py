"""snnc.backends: executable targets for snnc graphs (reference, sim, lava)."""
