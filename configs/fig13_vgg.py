"""Fig 13 (docs/paper.md): 5×VGG-16 → VGG-16 on CIFAR-100; agreement stays ≤ 85% under every policy.

    python -m kd_jax.sweep --config=configs/fig13_vgg.py --workdir=runs/fig13            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig13_vgg.py:mini --workdir=runs/fig13_mini  # CPU

VGG-16 without BatchNorm (kd_jax/models/vgg.py), so teacher and student differ only in their
weights. Policies from Fig 3 (same τ per arm as configs/fig3_augmentation.py): Baseline at
τ = 1 and 4, Combined, MixUp τ = 4. docs/paper.md gives no VGG recipe: we use the CIFAR recipes but
start the teacher at lr 0.05 (the student's rate) instead of 0.1, since a VGG without
normalization is prone to diverge at 0.1.

`mini`: CIFAR-10 JPEGs, VGG-16 at 1/8 width (8…64 channels, head 64), a 3-member teacher on
1,000 images (10 epochs), students distilled 3 epochs, train agreement on 500 images: the VGG
costs ~6× the multiply-adds of the mini PreResNet-8, so ensemble and data are smaller than in
the other minis.
"""
from kd_jax import recipes
from kd_jax.config import model_config

# (arm, distill.augment preset, τ); docs/paper.md, Fig 3 / Fig 13.
POLICIES = (
    ("baseline_t1", "baseline", 1.0),
    ("baseline_t4", "baseline", 4.0),
    ("combined", "combined", 1.0),
    ("mixup_t4", "baseline+mixup", 4.0),
)


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig13_vgg.py")
  if arg == "mini":
    c = recipes.paper_figure("fig13_vgg_mini")
    recipes.mini_figure(c, members=3, teacher_images=1_000, distill_epochs=3)
    s.seeds = (0,)  # VGG at 1/8 width costs ≈ 6× PreResNet-8: one seed on a 2-core CPU
    c.distill.train_eval_size = 500
    vgg = model_config("vgg", depth=16, width=0.125, dropout=0.5)
    s.title = "Fig 13 mini: 3×VGG-16 (1/8 width) → VGG-16, policies (CIFAR-10)"
  else:
    c = recipes.paper_figure("fig13_vgg")
    vgg = model_config("vgg", depth=16, width=1.0, dropout=0.5)
    c.teacher.ensemble_size = 5         # docs/paper.md, Fig 13: 5×VGG-16
    s.title = ("Fig 13: 5×VGG-16 → VGG-16, distillation policies (CIFAR-100; paper: "
                     "agreement ≤ 85% under every policy)")
  c.teacher.model = vgg
  c.distill.model = model_config(**vgg.to_dict())
  c.teacher.optim.lr = 0.05
  c.distill.teacher_members = c.teacher.ensemble_size
  s.arms = tuple((name, {"distill.augment": policy, "distill.temperature": tau})
                       for name, policy, tau in POLICIES)
  s.metrics = ("test/agreement", "test/student_acc")
  s.paper = ()                   # docs/paper.md gives only the bound (see the title)
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
