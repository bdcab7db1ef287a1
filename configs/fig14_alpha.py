"""Fig 14 (docs/paper.md): mixing the hard-label loss in, α ∈ {0, 0.1, 0.3, 0.5, 0.7}.

    python -m kd_jax.sweep --config=configs/fig14_alpha.py --workdir=runs/fig14            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig14_alpha.py:mini --workdir=runs/fig14_mini  # CPU

Self-distillation PreResNet-56 → PreResNet-56 on CIFAR-100, τ = 4, loss
α·CE(y, z_s) + (1−α)·L_KD (docs/paper.md, Definitions). docs/paper.md: α > 0 helps self-distillation
accuracy, not agreement; it gives no numbers.

`mini`: the shared mini setting (CIFAR-10 JPEGs, PreResNet-8 at quarter width, 2,000 images);
the student distills from the first member of the shared 5-member teacher.
"""
from kd_jax import recipes

ALPHAS = (0.0, 0.1, 0.3, 0.5, 0.7)    # docs/paper.md, Fig 14


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig14_alpha.py")
  if arg == "mini":
    c = recipes.paper_figure("fig14_alpha_mini")
    recipes.mini_figure(c)
    s.seeds = recipes.MINI_SEEDS  # about a minute per trial here
    s.title = "Fig 14 mini: self-distillation vs α (CIFAR-10)"
  else:
    c = recipes.paper_figure("fig14_alpha")
    s.title = ("Fig 14: self-distillation PreResNet-56 vs α (CIFAR-100; paper: α > 0 helps "
                     "accuracy, not agreement)")
  c.distill.teacher_members = 1         # self-distillation
  s.arms = tuple((f"alpha_{a:g}", {"distill.alpha": a}) for a in ALPHAS)
  s.x_key = "distill.alpha"
  s.x_label = "α (weight of the hard-label loss)"
  s.metrics = ("test/agreement", "test/student_acc")
  s.paper = ()                   # docs/paper.md gives no numbers (see the title)
  s.reference_arm = "alpha_0"    # the plain distillation loss
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
