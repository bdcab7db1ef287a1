"""Fig 9 (docs/paper.md): agreement by temperature τ ∈ {1, 4, 8, 16}, for m = 1 and m = 5 teachers.

    python -m kd_jax.sweep --config=configs/fig9_temperature.py --workdir=runs/fig9            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig9_temperature.py:mini --workdir=runs/fig9_mini  # CPU

ResNet-20 (basic-block PreResNet-20) teachers and students on subsampled CIFAR-100. docs/paper.md
says only "subsampled": we use a stratified 10,000-image subset of train (20%) for the teacher
and distill on the same images (`data.teacher_subset`; change it on the command line). One
5-member ensemble serves both lines: m = 1 distills from its first member.

`mini`: the shared mini setting (CIFAR-10 JPEGs, 5×PreResNet-8 at quarter width on 2,000
images, itself a subsample). Paper values are CIFAR-100 numbers: compare the shape of the
curves, not their levels.
"""
from kd_jax import recipes

TEMPERATURES = (1.0, 4.0, 8.0, 16.0)
MEMBERS = (1, 5)
# docs/paper.md, Fig 9: test agreement for τ = 1/4/8/16.
PAPER_AGREEMENT = {1: (58.0, 65.3, 65.2, 65.3), 5: (67.2, 74.8, 75.3, 74.9)}


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig9_temperature.py")
  if arg == "mini":
    c = recipes.paper_figure("fig9_temperature_mini")
    recipes.mini_figure(c)
    s.title = "Fig 9 mini: agreement vs temperature, m = 1 and 5 (CIFAR-10)"
  else:
    c = recipes.paper_figure("fig9_temperature", teacher_depth=20, student_depth=20)
    c.data.teacher_subset = 10_000      # "subsampled CIFAR-100": our choice, 20% of train
    c.data.distill_pool = "teacher"
    s.title = "Fig 9: agreement vs temperature, ResNet-20, subsampled CIFAR-100"
  c.teacher.ensemble_size = max(MEMBERS)
  s.arms = tuple((f"m{m}_t{t:g}", {"distill.teacher_members": m, "distill.temperature": t})
                       for m in MEMBERS for t in TEMPERATURES)
  s.x_key = "distill.temperature"
  s.x_label = "temperature τ"
  s.series_key = "distill.teacher_members"
  s.metrics = ("test/agreement", "test/student_acc")
  s.paper_setting = "subsampled CIFAR-100, ResNet-20"
  s.paper = tuple((f"m{m}_t{t:g}", {"test/agreement": v})
                        for m in MEMBERS for t, v in zip(TEMPERATURES, PAPER_AGREEMENT[m]))
  if arg == "mini":
    s.paper_dataset = recipes.PAPER_DATASET  # the mini trains on CIFAR-10: order, not level
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
