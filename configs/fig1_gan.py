"""Fig 1 (docs/paper.md): does more distillation data, SN-GAN samples, raise fidelity?

    python -m kd_jax.sweep --config=configs/fig1_gan.py --workdir=runs/fig1            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig1_gan.py:mini --workdir=runs/fig1_mini  # CPU

PreResNet-56 → PreResNet-56 on CIFAR-100, self-distillation (1 teacher) and 3×PreResNet-56 →
PreResNet-56, each distilled on the train set plus {0, 12.5k, 25k, 37.5k, 50k} GAN images per
epoch: every batch of 128 holds synth_ratio·128 fresh samples of an SN-GAN trained on the
teacher's data (official recipe: 100k generator updates), synth_ratio = 0, 0.2, 1/3, 3/7, 0.5
(kd_jax/train/synthetic.py). Samples are labelled by the teacher at τ = 1 (``distill.synth_temp``),
real rows at τ = 4; the x axis is the GAN images per 50k-image epoch. One GAN, stored under
``gan.store`` (default runs/gans, $KD_JAX_GANS), serves every arm (and Fig 3/5's GAN arms).

`mini`: real CIFAR-10 JPEGs and the shared 5-member PreResNet-8 (quarter width) teacher on
2,000 images (recipes.mini_figure); a small SN-GAN (recipes.mini_gan: width 16, batch 16, 60
generator updates, ≈10 min on 2 CPU cores) whose samples are noise and colour blobs, not
objects: the mini shows the path runs end to end on real data, not the paper's effect.
Arms: GAN images 0, 1,200 and 2,000 per 2,000-image epoch (synth_ratio 0, 0.375, 0.5 of a
batch of 32) for the 1-member and the 3-member teacher, one seed.
"""
from kd_jax import recipes

#: synth_ratio of the paper's GAN images per 50k-image epoch: r / (1 − r) · 50k.
RATIOS = ((0, 0.0), (12_500, 0.2), (25_000, 1 / 3), (37_500, 3 / 7), (50_000, 0.5))
# per 2,000-image epoch at batch 32: 12 + 20 real rows (100 steps), 16 + 16 (125 steps)
MINI_RATIOS = ((0, 0.0), (1_200, 0.375), (2_000, 0.5))
# docs/paper.md, Fig 1: end points only (≈ = read off the plot), by teacher members and end
# (no GAN images / the most GAN images of the variant).
PAPER = (
    (1, "none", {"test/agreement": "≈72.5", "test/student_acc": "≈72.0"}),
    (1, "most", {"test/agreement": "≈74.5", "test/student_acc": "≈71.0"}),
    (3, "none", {"test/agreement": "≈77"}),
    (3, "most", {"test/agreement": "≈80"}),
)


def paper_values(ratios: tuple) -> tuple:
  """PAPER under the arm names of a variant (its first and last GAN-image counts)."""
  ends = {"none": ratios[0][0], "most": ratios[-1][0]}
  return tuple((f"m{m}_gan{ends[end]}", v) for m, end, v in PAPER)


def arms(ratios: tuple) -> tuple:
  """One arm per (teacher members, GAN images per epoch)."""
  out = []
  for members in (1, 3):
    for images, ratio in ratios:
      out.append((f"m{members}_gan{images}",
                  {"distill.teacher_members": members, "distill.synth_ratio": ratio}))
  return tuple(out)


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig1_gan.py")
  if arg == "mini":
    c = recipes.paper_figure("fig1_gan_mini")
    recipes.mini_figure(c)
    recipes.mini_gan(c)
    s.seeds = (0,)  # a seed is 6 trials, ≈ 16 min on a 2-core CPU: one seed
    s.arms = arms(MINI_RATIOS)
    s.paper = paper_values(MINI_RATIOS)
    s.title = "Fig 1 mini: PreResNet-8 students on real + SN-GAN images (CIFAR-10)"
    s.paper_dataset = recipes.PAPER_DATASET
    s.x_label = "synth_ratio (0.375, 0.5: +1.2k, +2k GAN images/epoch)"
  else:
    c = recipes.paper_figure("fig1_gan")
    recipes.paper_gan(c)
    s.arms = arms(RATIOS)
    s.paper = paper_values(RATIOS)
    s.title = "Fig 1: PreResNet-56 students on real + SN-GAN images (CIFAR-100)"
    s.x_label = "synth_ratio (0.2 … 0.5: +12.5k … 50k GAN images/epoch)"
  c.teacher.ensemble_size = 5 if arg == "mini" else 3   # mini: the shared 5-member store entry
  c.distill.synth_temp = 1.0             # official default for the synthetic rows
  s.x_key = "distill.synth_ratio"
  s.series_key = "distill.teacher_members"
  s.metrics = ("test/agreement", "test/student_acc", "synth/agreement")
  s.paper_setting = "CIFAR-100, ResNet-56"
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
