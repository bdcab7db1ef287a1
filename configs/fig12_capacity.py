"""Fig 12 (docs/paper.md): student capacity. R20→R20, R20→R56, R56→R56, R56→R110 on CIFAR-100.

    python -m kd_jax.sweep --config=configs/fig12_capacity.py --workdir=runs/fig12            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig12_capacity.py:mini --workdir=runs/fig12_mini  # CPU

PreResNet-20 (basic blocks) and PreResNet-56/110 (bottleneck blocks) with the paper's CIFAR
recipes, τ = 4. docs/paper.md gives no ensemble size for this figure; we distill from one teacher,
so R20→R20 and R56→R56 are self-distillation and the deeper students show what extra
capacity buys (docs/paper.md: 2–3 points of agreement). Each teacher depth is trained once and
shared by its two arms (R56 also with the other figures, through the shared store).

`mini`: CIFAR-10 JPEGs, quarter-width PreResNets with the depths scaled down
(20 → 8, 56 → 14, 110 → 20, all basic blocks), teachers on 2,000 images.
"""
from kd_jax import recipes
from kd_jax.config import model_config

PAPER_DEPTHS = {"r20": 20, "r56": 56, "r110": 110}
MINI_DEPTHS = {"r20": 8, "r56": 14, "r110": 20}
PAIRS = (("r20", "r20"), ("r20", "r56"), ("r56", "r56"), ("r56", "r110"))


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig12_capacity.py")
  if arg == "mini":
    c = recipes.paper_figure("fig12_capacity_mini")
    recipes.mini_figure(c, members=1)
    depths, width = MINI_DEPTHS, 0.25
    s.title = "Fig 12 mini: teacher → student depth (PreResNet, CIFAR-10)"
  else:
    c = recipes.paper_figure("fig12_capacity")
    depths, width = PAPER_DEPTHS, 1.0
    s.title = ("Fig 12: teacher → student capacity, PreResNet (CIFAR-100; paper: deeper "
                     "students gain 2–3 points agreement)")
  c.teacher.ensemble_size = 1

  def model(key):
    return model_config("preresnet", depth=depths[key], norm="batch", width=width).to_dict()

  s.arms = tuple((f"{t}_to_{s}", {"teacher.model": model(t), "distill.model": model(s)})
                       for t, s in PAIRS)
  s.metrics = ("test/agreement", "test/student_acc")
  s.paper = ()                   # docs/paper.md gives no per-arm number (see the title)
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
