"""Fig 2 (docs/paper.md): LeNet-5 self-distillation on MNIST; fidelity grows with distillation data.

    python -m kd_jax.sweep --config=configs/fig2_mnist.py --workdir=runs/fig2            # tfds
    python -m kd_jax.sweep --config=configs/fig2_mnist.py:mini --workdir=runs/fig2_mini  # CPU

The teacher is configs/mnist.py's: LeNet-5 trained 100 epochs on a stratified 200-image subset
of MNIST train (docs/paper.md, Fig 2). Students are LeNet-5 too.

Paper scale reads MNIST and EMNIST through tfds (prepare `mnist` and `emnist/byclass`; the
error message gives the command). One arm distills on MNIST train (60k); three on EMNIST
byclass train at 25/50/100% (174,483 / 348,966 / 697,932 images; docs/paper.md "≈175k/350k/700k").
EMNIST enters through `data.ood`: its images are appended to the distillation set and only the
teacher labels them (their own labels include letters). A distillation pool cannot be empty,
so those arms also keep the teacher's own 200 images. Test set: the MNIST test split.

EMNIST orientation. Default (`data.emnist_transposed=False`): the tfds source transposes
EMNIST (stored as published, mirrored and rotated) into MNIST's orientation, so the students
see upright digits and letters. The paper ran it transposed: the official loader
(gnosis/datasets/emnist.py) uses torchvision's EMNIST as stored, against MNIST teachers. Add
`--config.data.emnist_transposed=True` to reproduce Fig 2 as the paper ran it.

Student recipe. Paper scale uses the official one (lr 0.05, 300 epochs; see below). On the
small embedded-MNIST sets of the mini, lr 0.05 (60 epochs, PyTorch-default LeNet init as the
official model) left 8 of 20 students collapsed to one class (10% accuracy;
experiments/results/fig2_mnist_mini_lr0.05/): the collapse is not an initialization artefact
but a step size too large for a few hundred τ²-scaled steps. The mini and configs/mnist.py
therefore keep lr 0.01; at paper scale (60k–700k images) add --config.distill.optim.lr=0.01 if
students collapse.

`mini` uses the 5,000 real MNIST images embedded in the package, split as configs/mnist.py
does (1,000 test, 200 teacher, 3,800 distillation pool); its arms distill on stratified
subsets of 475, 950, 1,900 and 3,800 images of that pool, plotted against the set size.
"""
from pathlib import Path

from kd_jax import config_files, recipes
from kd_jax.config import optim_config

# EMNIST byclass train has 697,932 images; the paper's 25/50/100% of it (docs/paper.md, Fig 2).
EMNIST_BYCLASS_TRAIN = 697_932
MINI_SIZES = (475, 950, 1_900, 3_800)  # 1/8, 1/4, 1/2 and all of the embedded 3,800-image pool


def _mnist_config(arg: str = ""):
  """configs/mnist.py's get_config, loaded from beside this file as config_flags would."""
  return config_files.get_config(config_files.load_module(Path(__file__).with_name("mnist.py")), arg)


def _emnist(num: int) -> dict:
  return {"data.distill_pool": "teacher", "data.ood.source": "tfds",
          "data.ood.name": "emnist/byclass", "data.ood.num": num}


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig2_mnist.py")
  c = _mnist_config()
  c.teacher.store = recipes.teacher_store()  # the mini teacher is configs/mnist.py's
  # The teacher's accuracy as its own panel: the paper's Fig 2 shows it beside the students'.
  s.metrics = ("test/agreement", "test/student_acc", "test/teacher_acc")
  s.paper_setting = "MNIST, LeNet-5 teacher 85.3%"
  if arg == "mini":
    c.name = "fig2_mnist_mini"
    s.arms = tuple((f"distill_{n}", {"data.distill_subset": n}) for n in MINI_SIZES)
    s.seeds = recipes.MINI_SEEDS  # LeNet-5 on MNIST: minutes per seed
    s.x_key = "data.distill_subset"
    s.x_label = "distillation images (embedded MNIST)"
    # The mini teacher follows the paper's recipe, so its accuracy is comparable (85.3%);
    # the "> 99% agreement" of docs/paper.md needs far more than 3,800 distillation images.
    s.paper = ((f"distill_{MINI_SIZES[-1]}", {"test/teacher_acc": 85.3}),)
    s.title = "Fig 2 mini: LeNet-5 self-distillation vs distillation set size (MNIST)"
    return c, s
  c.name = "fig2_mnist"
  # The official student recipe (its defaults, config/image_classification.yaml): 300 epochs,
  # batch 128, SGD Nesterov 0.9, lr 0.05 cosine to 1e-6, wd 1e-4. configs/mnist.py (the
  # README's fast run and this figure's mini) keeps lr 0.01 and 60 epochs instead.
  c.distill.epochs = 300
  c.distill.batch_size = 128
  c.distill.optim = optim_config(name="sgd", lr=0.05, momentum=0.9, nesterov=True,
                                 weight_decay=1e-4, schedule="cosine", lr_min=1e-6)
  c.distill.eval_every = 25
  c.data.source = "tfds"
  c.data.name = "mnist"
  c.data.test_size = 0                  # MNIST has its own test split
  s.seeds = recipes.PAPER_SEEDS
  s.reference_arm = "mnist_60k"  # real MNIST; the EMNIST arms add data from elsewhere
  s.arms = (
      ("mnist_60k", {"data.distill_pool": "train"}),
      ("emnist_25", _emnist(EMNIST_BYCLASS_TRAIN // 4)),
      ("emnist_50", _emnist(EMNIST_BYCLASS_TRAIN // 2)),
      ("emnist_100", _emnist(EMNIST_BYCLASS_TRAIN)),
  )
  # docs/paper.md, Fig 2: "> 99% test agreement with enough distillation data; student accuracy
  # ≈ teacher (85.3%)". The plot marks 99 as the bound; the teacher is the same in every arm.
  s.paper = tuple((arm, {"test/teacher_acc": 85.3}) for arm in
                        ("mnist_60k", "emnist_25", "emnist_50")) + (
      ("emnist_100", {"test/agreement": "≈99", "test/student_acc": "≈85.3",
                      "test/teacher_acc": 85.3}),)
  s.title = "Fig 2: LeNet-5 self-distillation on MNIST / EMNIST (paper: > 99% agreement)"
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
