"""Fig 4 (docs/paper.md): recycling the teacher's data. Teachers see D0; students D0, D1 or both.

    python -m kd_jax.sweep --config=configs/fig4_recycling.py --workdir=runs/fig4            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig4_recycling.py:mini --workdir=runs/fig4_mini  # CPU

CIFAR-100 train is halved into stratified D0/D1 (kd_jax/data/splits.py); a 5×PreResNet-56
ensemble trains on all of D0 and PreResNet-56 students distill (τ = 4) on D0 (the teacher's
own data), D1 (unseen by the teacher, same size) or D0 ∪ D1 (the whole train split). docs/paper.md
gives no ensemble size for Fig 4; its "best test agreement ≈85%" is the level of Fig 3's 5×
teacher at τ = 4 (84.5), not of self-distillation (≈72–77), so we use 5 members.
docs/paper.md also reports s0 more accurate than s1 but less calibrated (test ECE is tabulated).

`mini`: real CIFAR-10 JPEGs, 5×PreResNet-8 (quarter width) on a 2,000-image stratified subset
of D0; s0 distills on exactly those images, s1 on 2,000 images of D1. The mini "both" arm is a
stratified 4,000 images of the whole train split (about half from each half), not the union
of the teacher's images and s1's: the splits cannot express that union when the teacher uses
only part of D0.
"""
from kd_jax import recipes


def _figure(arg: str = ""):
  """(trial config, sweep) of this figure for a variant."""
  s = recipes.figure_sweep(arg)
  recipes.check_variant(arg, "configs/fig4_recycling.py")
  if arg == "mini":
    c = recipes.paper_figure("fig4_recycling_mini")
    recipes.mini_figure(c)
    c.data.teacher_pool = "d0"
    s.arms = (
        ("s0_d0", {"data.distill_pool": "teacher"}),
        ("s1_d1", {"data.distill_pool": "d1", "data.distill_subset": 2_000}),
        ("s01_both", {"data.distill_pool": "train", "data.distill_subset": 4_000}),
    )
    s.title = "Fig 4 mini: teacher on D0, students on D0 / D1 / both (CIFAR-10)"
  else:
    c = recipes.paper_figure("fig4_recycling")
    c.data.teacher_pool = "d0"          # docs/paper.md, Fig 4: teachers trained on D0
    c.data.teacher_subset = 0           # all of D0
    s.arms = (
        ("s0_d0", {"data.distill_pool": "d0"}),
        ("s1_d1", {"data.distill_pool": "d1"}),
        ("s01_both", {"data.distill_pool": "train"}),
    )
    s.title = ("Fig 4: 5×PreResNet-56 teacher on D0, students on D0 / D1 / both "
                     "(CIFAR-100; paper: best test agreement ≈85%)")
  c.teacher.ensemble_size = 5
  c.distill.teacher_members = 5
  s.metrics = ("test/agreement", "test/student_acc", "test/student_ece")
  s.paper = ()                   # docs/paper.md gives no per-arm number (see the title)
  return c, s


# get_config(arg): the base trial (each arm overrides some keys); get_sweep(arg): the figure.
get_config, get_sweep = recipes.entry_points(_figure)
