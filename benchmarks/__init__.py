"""Side-by-side benchmarks of kd_jax's steps against a plain PyTorch reference (``bench`` extra)."""
