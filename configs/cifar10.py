"""CIFAR-10 with the paper's CIFAR recipes (PreResNet-56, crop + flip, τ = 4).

    python -m kd_jax.main --config=configs/cifar10.py --workdir=runs/c10          # tfds cifar10
    python -m kd_jax.main --config=configs/cifar10.py:mini --workdir=runs/c10_mini  # CPU, JPEG folder

`mini` reads the real CIFAR-10 JPEGs (../shared/data, or --config.data.path=<folder or tar>).
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
