"""The paper's main experiment (docs/paper.md): PreResNet-56 teachers → PreResNet-56 student, CIFAR-100.

    python -m kd_jax.main --config=configs/cifar100.py --workdir=runs/c100 \
        --config.teacher.ensemble_size=5 --config.distill.temperature=1

Paper scale reads CIFAR-100 through tfds (prepare it once; the error says how). There is no
CPU-sized CIFAR-100 here: `mini` is configs/cifar10.py:mini (real CIFAR-10, named so), kept
as a variant of this file because it runs the same code path at a size a CPU finishes.
"""
from kd_jax import recipes


def get_config(arg: str = ""):
  c = recipes.paper_cifar100("cifar100_preresnet56")
  if arg == "mini":
    c.name = "cifar10_mini"        # it trains on CIFAR-10: the name says so
    recipes.tfds_cifar(c, "cifar10")
    recipes.mini_cifar10(c)
  elif arg:
    raise ValueError(f"unknown variant {arg!r} of configs/cifar100.py; use '' or 'mini'")
  return c
