"""Fig 6b (docs/paper.md): start the student at θ = λ·θ_teacher + (1−λ)·θ_random, λ from 0 to 1.

    python -m kd_jax.sweep --config=configs/fig6_init.py --workdir=runs/fig6_init            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig6_init.py:mini --workdir=runs/fig6_init_mini  # CPU

The Fig 6a setting (configs/fig6_optimization.py: ResNet-20 LayerNorm self-distillation on
CIFAR-100's train split with crop + flip) with SGD for 300 epochs. The paper's "train agreement"
and "train KL" are the official code's running values over the last epoch (train mode, each
augmented batch before its update): the `running/*` columns; `distill/*` is eval mode on clean
images, `distill_aug/*` eval mode as augmented; docs/paper.md's λ = 0 numbers equal its SGD-300 ones.
As in the official code the learning rate is scaled by (1−λ), floored at the schedule minimum.
docs/paper.md: a sharp change between λ = 0.25 and 0.375.

`mid`: the optimization study's CPU setting (kd_jax.recipes.mid_student: a LayerNorm
PreResNet-8 teacher on all 50,000 CIFAR-10 train images, students distilled 15 epochs on 1,000
of them), 3 seeds; its λ = 0 arm is configs/remedies.py:mid's baseline.

`mini`: the fig6 mini setting (CIFAR-10 JPEGs, LayerNorm PreResNet-8 at quarter width, 1,000
images) distilled 10 epochs, so λ = 0 is the mini's sgd_1k arm of configs/fig6_optimization.py
(its 3-epoch "300" arm leaves a random start too little time to fit).
"""
from kd_jax import recipes

# docs/paper.md, Fig 6 table: λ → (train agreement %, train KL), compared with running/*.
PAPER = ((0.0, 78.96, 0.497), (0.25, 80.39, 0.433), (0.375, 97.55, 0.014), (0.5, 99.65, 3e-4),
         (0.75, 99.57, 4e-3), (0.875, 99.91, 1e-5), (1.0, 100.0, 0.0))


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig6_init.py", ("", "mini", "mid"))
  if arg == "mid":
    c = recipes.paper_optimization("fig6_init_mid")
    recipes.mid_student(c)
    s.seeds = recipes.PAPER_SEEDS
    s.title = "Fig 6b mid: interpolated initialization (LayerNorm PreResNet-8, CIFAR-10 50k)"
  elif arg == "mini":
    c = recipes.paper_optimization("fig6_init_mini")
    recipes.mini_optimization(c, distill_epochs=10)
    s.seeds = recipes.MINI_SEEDS
    s.title = "Fig 6b mini: interpolated initialization (LayerNorm PreResNet-8)"
  else:
    c = recipes.paper_optimization("fig6_init")   # SGD, 300 epochs: the student recipe
    s.title = "Fig 6b: interpolated initialization (ResNet-20 LN, CIFAR-100)"
  c.distill.init.mode = "interpolate"
  c.distill.init.member = 0
  c.distill.init.scale_lr = True
  s.arms = tuple((f"lam_{lam:g}", {"distill.init.lam": lam}) for lam, _, _ in PAPER)
  s.x_key = "distill.init.lam"
  s.x_label = "λ (0 = random init, 1 = the teacher)"
  s.metrics = ("running/agreement", "running/kl", "distill/agreement", "test/agreement")
  s.paper = tuple((f"lam_{lam:g}", {"running/agreement": agree, "running/kl": kl})
                        for lam, agree, kl in PAPER)
  s.paper_setting = "CIFAR-100, ResNet-20 LN self-distillation"
  s.reference_arm = "lam_0"      # a random start: the usual student
  if arg in ("mini", "mid"):
    s.paper_dataset = recipes.PAPER_DATASET  # the mini trains on CIFAR-10: order, not level
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
