"""Fig 3 (docs/paper.md): 5×PreResNet-56 → PreResNet-56 on CIFAR-100 under distillation-data policies.

    python -m kd_jax.sweep --config=configs/fig3_augmentation.py --workdir=runs/fig3            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig3_augmentation.py:mini --workdir=runs/fig3_mini  # CPU

One arm per policy of the Fig 3 table (kd_jax/data/augment.py POLICY_PRESETS), plus CutMix
(not in the paper). The GAN arm replaces a fraction 0.2 of every batch by fresh SN-GAN samples
(distill.synth_ratio, kd_jax/train/synthetic.py; real rows at τ = 4, samples at τ = 1), the GAN
trained once on the teacher's data and kept in the shared GAN store (kd_jax/runner/gans.py); in
`mini` it is the CPU-sized GAN of recipes.mini_gan, whose samples are poor. docs/paper.md names τ only for
Baseline, MixUp and GAN; the other policies run at τ = 1, the setting their numbers sit next
to (OOD and Noise land within a point of Baseline τ=1, five below Baseline τ=4). The OOD arm
appends 10,000 SVHN images (tfds `svhn_cropped`) to the distillation set.

`mini`: real CIFAR-10 JPEGs, the shared 5-member PreResNet-8 (quarter width) teacher on 2,000
images (figs 5, 9, 10, 14 use it too); students distill 10 epochs on those images from its first
3 members, which keeps the 11 arms near 14 minutes on 2 CPU cores. Its OOD data
must be real and local, so it is the embedded MNIST (gray → RGB, 28 → 32 px bilinear, by
kd_jax/data/splits.match_images): 400 images, the paper's 10k : 50k ratio; the arm is named
`ood_mnist` there (`ood_svhn` at paper scale). Paper values are CIFAR-100 numbers, marked so on
the plot and in the table: compare the ordering of arms, not the levels.
"""
from kd_jax import recipes

# (arm, distill.augment preset, τ); docs/paper.md, Fig 3 table. The rotation arm is ±20° bilinear after
# crop|hflip, not the official default (90°, nearest, first): see augment.POLICY_PRESETS.
POLICIES = (
    ("baseline_t1", "baseline", 1.0),
    ("baseline_t4", "baseline", 4.0),
    ("rotation", "baseline+rotation", 1.0),
    ("vflip", "baseline+vflip", 1.0),
    ("colorjitter", "baseline+colorjitter", 1.0),
    ("combined", "combined", 1.0),
    ("mixup_t1", "baseline+mixup", 1.0),
    ("mixup_t4", "baseline+mixup", 4.0),
    ("ood", "baseline", 1.0),              # named per variant: ood_svhn / ood_mnist
    ("noise", "baseline+noise", 1.0),
    ("cutmix_t1", "baseline+cutmix", 1.0),
    ("gan_t4", "baseline", 4.0),           # + GAN_ARM
)
#: docs/paper.md, Fig 3: "a fraction 0.2 of every batch replaced by SN-GAN samples".
GAN_ARM = {"distill.synth_ratio": 0.2}
# docs/paper.md, Fig 3 table: test accuracy / agreement (≈ = read off the plot).
PAPER = (
    ("baseline_t1", {"test/student_acc": "≈72.5", "test/agreement": "≈79"}),
    ("baseline_t4", {"test/student_acc": "≈74.5", "test/agreement": 84.5}),
    ("rotation", {"test/student_acc": "≈73.5", "test/agreement": "≈81.5"}),
    ("vflip", {"test/student_acc": "≈74.0", "test/agreement": "≈81.5"}),
    ("colorjitter", {"test/student_acc": "≈74.5", "test/agreement": "≈82.5"}),
    ("combined", {"test/student_acc": "≈73.0", "test/agreement": "≈83.5"}),
    ("mixup_t1", {"test/student_acc": "≈75.0", "test/agreement": "≈83.5"}),
    ("mixup_t4", {"test/student_acc": "≈74.5", "test/agreement": 86}),
    ("ood_svhn", {"test/student_acc": "≈72.5", "test/agreement": "≈79.5"}),
    ("noise", {"test/student_acc": "≈71.5", "test/agreement": "≈78.5"}),
    ("gan_t4", {"test/student_acc": "≈74.5", "test/agreement": "≈83.5"}),
)
OOD_PAPER = {"data.ood.source": "tfds", "data.ood.name": "svhn_cropped",
             "data.ood.num": 10_000}                  # docs/paper.md: 10k SVHN images appended
OOD_MINI = {"data.ood.source": "mnist_embedded", "data.ood.num": 400}  # 2,000 × 10k / 50k


def arms(ood: dict, ood_name: str) -> tuple:
  """The policies as arms; the OOD arm is named after the OOD set it really appends."""
  out = []
  for name, policy, tau in POLICIES:
    overrides = {"distill.augment": policy, "distill.temperature": tau}
    if name == "ood":  # OOD images come from data.ood; the policy is baseline
      overrides.update(ood)
      name = ood_name
    if name == "gan_t4":
      overrides.update(GAN_ARM)
    out.append((name, overrides))
  return tuple(out)


def paper_values(ood_name: str) -> tuple:
  """PAPER with its OOD row under the arm name of the variant."""
  return tuple((ood_name if arm == "ood_svhn" else arm, v) for arm, v in PAPER)


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig3_augmentation.py")
  if arg == "mini":
    c = recipes.paper_figure("fig3_augmentation_mini")
    recipes.mini_figure(c)
    recipes.mini_gan(c)
    ood_name = "ood_mnist"
    s.arms = arms(OOD_MINI, ood_name)
    s.title = "Fig 3 mini: 3×PreResNet-8 → PreResNet-8, distillation policies (CIFAR-10)"
    s.paper_dataset = recipes.PAPER_DATASET  # the mini trains on CIFAR-10: order, not level
  else:
    c = recipes.paper_figure("fig3_augmentation")
    recipes.paper_gan(c)
    ood_name = "ood_svhn"
    s.arms = arms(OOD_PAPER, ood_name)
    s.title = "Fig 3: 5×PreResNet-56 → PreResNet-56, distillation policies (CIFAR-100)"
  c.teacher.ensemble_size = 5             # docs/paper.md, Fig 3: 5×ResNet-56
  c.distill.teacher_members = 3 if arg == "mini" else 5
  s.metrics = ("test/agreement", "test/student_acc")
  s.paper = paper_values(ood_name)
  s.paper_setting = "CIFAR-100, 5×ResNet-56 → ResNet-56"
  # 8 of the 11 other policies run at τ = 1: Baseline τ=1 is the like-for-like comparison.
  s.reference_arm = "baseline_t1"
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
