"""Fig 10 (docs/paper.md): teacher ensemble size m = 1…12 → PreResNet-56 student on CIFAR-100.

    python -m kd_jax.sweep --config=configs/fig10_ensemble_size.py --workdir=runs/fig10            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig10_ensemble_size.py:mini --workdir=runs/fig10_mini  # CPU

One 12-member PreResNet-56 ensemble is trained and the arm for m distills from its first m
members (τ = 4, the student recipe). Figs 3, 5 and 14 use the same teacher recipe: run this
figure first and they take their members from its ensemble in the shared store instead of
training their own. docs/paper.md: agreement keeps rising (≈86 at m = 12) while student
accuracy saturates past m ≈ 4.

`mini`: m = 1…5 from the shared 5×PreResNet-8 (quarter width) ensemble on 2,000 CIFAR-10 images.

`c10`: the paper's recipes and PreResNet-56 on CIFAR-10 (all 50k train images, the 10k test
images; kd_jax.recipes.cifar10_data: a prepared tfds `cifar10` or the JPEG tar), m = 1, 3, 5
from one 5-member ensemble, 3 seeds: self-distillation (m = 1) and the paper's main setting
(m = 5) at paper scale, for an accelerator (`experiments/accelerator_campaign.sh` runs it in
short budgeted calls). `c10_smoke`: the same code path shrunk to a minute on a CPU, to check a
setup; its numbers mean nothing.
"""
from kd_jax import recipes


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig10_ensemble_size.py", ("", "mini", "c10", "c10_smoke"))
  metrics = ("test/agreement", "test/student_acc", "test/teacher_acc")
  sizes: tuple[int, ...] = ()           # ensemble sizes distilled from; () = 1 … members
  if arg.startswith("c10"):
    c = recipes.paper_figure(f"fig10_ensemble_size_{arg}")
    recipes.cifar10_data(c)   # the whole train split, the test split: as tfds_cifar set it
    members, sizes = 5, (1, 3, 5)
    if arg == "c10_smoke":
      recipes.mini_figure(c, teacher_images=256, test_images=200, teacher_epochs=2,
                          distill_epochs=2, members=members)
      c.run.checkpoint_every = 1
      s.seeds = (0,)
    s.title = (f"Fig 10 on CIFAR-10, {'smoke test' if arg == 'c10_smoke' else 'paper recipes'}: "
               "agreement vs teacher ensemble size (PreResNet-56)")
    metrics += ("running/agreement",)   # the paper's train agreement, at paper scale
  elif arg == "mini":
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
  s.arms = tuple((f"m{m}", {"distill.teacher_members": m}) for m in sizes or range(1, members + 1))
  s.x_key = "distill.teacher_members"
  s.x_label = "teacher ensemble size m"
  s.metrics = metrics
  s.paper_setting = "CIFAR-100, ResNet-56"
  s.paper = (("m12", {"test/agreement": "≈86"}),) if members == 12 else ()
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
