"""Random FID-Inception weights under pytorch-fid's state_dict names (tests only: the real
weights cannot be downloaded here)."""
from __future__ import annotations

import numpy as np

from kd_jax.runner import inception_weights


def random_state_dict(seed: int = 0, fc_scale: float = 0.05) -> dict[str, np.ndarray]:
  """He-scaled conv kernels and near-identity BatchNorms, so activations stay O(1) through the
  94 conv units; a non-zero classifier bias (which the IS logits must leave out)."""
  rng = np.random.default_rng(seed)
  out = {}
  for name, shape in inception_weights.torch_names().items():
    leaf = name.rsplit(".", 1)[1]
    if name.startswith("fc."):
      v = rng.normal(0, fc_scale if leaf == "weight" else 1.0, shape)
    elif leaf == "weight" and len(shape) == 4:
      v = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
    elif leaf in ("weight", "running_var"):
      v = rng.uniform(0.8, 1.2, shape)
    else:  # BN bias, running mean
      v = rng.normal(0, 0.05, shape)
    out[name] = v.astype(np.float32)
  return out
