"""Lowest layer: errors, registries, the Batch, device mesh, multi-host set-up, caches, the store lock and checkpoints."""
