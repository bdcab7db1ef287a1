"""Fig 10 (docs/paper.md): teacher ensemble size m = 1…12 → PreResNet-56 student on CIFAR-100.

    python -m kd_jax.sweep --config=configs/fig10_ensemble_size.py --workdir=runs/fig10            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig10_ensemble_size.py:mini --workdir=runs/fig10_mini  # CPU

One 12-member PreResNet-56 ensemble is trained and the arm for m distills from its first m
members (τ = 4, the student recipe). Figs 3, 5 and 14 use the same teacher recipe: run this
figure first and they take their members from its ensemble in the shared store instead of
training their own. docs/paper.md: agreement keeps rising (≈86 at m = 12) while student
accuracy saturates past m ≈ 4.

`mini`: m = 1…5 from the shared 5×PreResNet-8 (quarter width) ensemble on 2,000 CIFAR-10 images.
"""
from kd_jax import recipes


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig10_ensemble_size.py")
  if arg == "mini":
    c = recipes.paper_figure("fig10_ensemble_size_mini")
    recipes.mini_figure(c)
    s.seeds = recipes.MINI_SEEDS  # about a minute per trial here
    members = 5
    s.title = "Fig 10 mini: agreement vs teacher ensemble size (CIFAR-10)"
  else:
    c = recipes.paper_figure("fig10_ensemble_size")
    members = 12                        # docs/paper.md, Fig 10: ensembles of 1…12
    s.title = "Fig 10: agreement vs teacher ensemble size, PreResNet-56 (CIFAR-100)"
  c.teacher.ensemble_size = members
  s.arms = tuple((f"m{m}", {"distill.teacher_members": m}) for m in range(1, members + 1))
  s.x_key = "distill.teacher_members"
  s.x_label = "teacher ensemble size m"
  s.metrics = ("test/agreement", "test/student_acc", "test/teacher_acc")
  s.paper_setting = "CIFAR-100, ResNet-56"
  s.paper = (("m12", {"test/agreement": "≈86"}),) if members == 12 else ()
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
