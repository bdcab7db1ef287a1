"""The paper's main experiment (docs/paper.md): PreResNet-56 teachers → PreResNet-56 student, CIFAR-100.

    python -m kd_jax.main --config=configs/cifar100.py --workdir=runs/c100 \
        --config.teacher.ensemble_size=5 --config.distill.temperature=1
    python -m kd_jax.main --config=configs/cifar100.py:mini --workdir=runs/c100_mini   # CPU, real CIFAR-10

Paper scale reads CIFAR-100 through tfds (prepare it once; the error says how). The `mini`
variant runs the same code path on the real CIFAR-10 JPEGs (../shared/data) with a
PreResNet-8 at half width and an 8k-image teacher subset, in about 15 minutes on 2 CPU cores.
"""
from kd_jax import recipes


def get_config(arg: str = ""):
  c = recipes.paper_cifar100("cifar100_preresnet56")
  if arg == "mini":
    c.name = "cifar100_mini_on_cifar10"
    recipes.mini_cifar10(c)
  elif arg:
    raise ValueError(f"unknown variant {arg!r} of configs/cifar100.py; use '' or 'mini'")
  return c
