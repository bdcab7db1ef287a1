"""kd_jax: knowledge-distillation fidelity experiments in JAX/Flax."""

__version__ = "0.1.0"
