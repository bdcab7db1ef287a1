"""CIFAR-10 with the paper's CIFAR recipes (PreResNet-56, crop + flip, τ = 4).

    python -m kd_jax.main --config=configs/cifar10.py --workdir=runs/c10          # tfds cifar10
    python -m kd_jax.main --config=configs/cifar10.py:mini --workdir=runs/c10_mini  # CPU

`mini` (a PreResNet-8 at half width, an 8k-image teacher subset) takes CIFAR-10 from the first
of: $KD_JAX_CIFAR10 (a folder or tar of train/<class>/*.jpg), a prepared tfds `cifar10`, a
`../shared/data/cifar10-jpeg.tar.gz` beside the clone; `--config.data.path=<folder or tar>`
overrides them (kd_jax.recipes.cifar10_data). Without any, it stops with one line saying how
to get the data.
"""
from kd_jax import recipes


def get_config(arg: str = ""):
  c = recipes.paper_cifar100("cifar10_preresnet56")
  recipes.tfds_cifar(c, "cifar10")
  if arg == "mini":
    c.name = "cifar10_mini"
    recipes.mini_cifar10(c)
  elif arg:
    raise ValueError(f"unknown variant {arg!r} of configs/cifar10.py; use '' or 'mini'")
  return c
