"""Model architectures the demo repository is built from (no downloads, seeded weights)."""
