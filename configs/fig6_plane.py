"""Fig 6c (docs/paper.md): distillation loss and agreement on the plane through the teacher, the
student's initialization and the final student.

    python -m kd_jax.sweep --config=configs/fig6_plane.py --workdir=runs/fig6_plane            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig6_plane.py:mini --workdir=runs/fig6_plane_mini  # CPU

The Fig 6a SGD-300 student (configs/fig6_optimization.py: ResNet-20 LayerNorm
self-distillation on CIFAR-100, no distillation augmentation) from a random start; after
distillation kd_jax/runner/analysis.py evaluates a 21×21 grid on 1,000 distillation images and writes
`<workdir>/random_init/seed<k>/plane/plane.npz` and one plot per quantity: a cell per grid
point (no contour interpolation, which smears a ridge narrower than the grid spacing), each
anchor labelled with its value measured at the anchor itself.

`mini`: the fig6 mini setting (CIFAR-10, LayerNorm PreResNet-8 at quarter width, 1,000
images, 10 epochs) with a 21×21 grid on 500 images.
"""
from kd_jax import recipes


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig6_plane.py")
  if arg == "mini":
    c = recipes.paper_optimization("fig6_plane_mini")
    recipes.mini_optimization(c, distill_epochs=10)
    c.analysis.plane_examples = 500
    s.seeds = recipes.MINI_SEEDS
    s.title = "Fig 6c mini: loss plane through teacher, student init and final student"
  else:
    c = recipes.paper_optimization("fig6_plane")   # SGD, 300 epochs: the student recipe
    s.title = "Fig 6c: loss plane through teacher, student init and final student"
  c.analysis.plane = True
  s.arms = (("random_init", {"distill.init.mode": "random"}),)
  s.metrics = ("running/agreement", "distill/agreement", "test/agreement")
  s.paper = ()                   # the paper shows the plane as a picture only
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
