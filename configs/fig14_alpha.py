"""Fig 14 (PAPER.md): mixing the hard-label loss in, α ∈ {0, 0.1, 0.3, 0.5, 0.7}.

    python -m kd_jax.sweep --config=configs/fig14_alpha.py --workdir=runs/fig14            # GPU/TPU
    python -m kd_jax.sweep --config=configs/fig14_alpha.py:mini --workdir=runs/fig14_mini  # CPU

Self-distillation PreResNet-56 → PreResNet-56 on CIFAR-100, τ = 4, loss
α·CE(y, z_s) + (1−α)·L_KD (PAPER.md, Definitions). PAPER.md: α > 0 helps self-distillation
accuracy, not agreement; it gives no numbers.

`mini`: the shared mini setting (CIFAR-10 JPEGs, PreResNet-8 at quarter width, 2,000 images);
the student distills from the first member of the shared 5-member teacher.
"""
from kd_jax import recipes

ALPHAS = (0.0, 0.1, 0.3, 0.5, 0.7)    # PAPER.md, Fig 14


def get_config(arg: str = ""):
  recipes.check_variant(arg, "configs/fig14_alpha.py")
  if arg == "mini":
    c = recipes.paper_figure("fig14_alpha_mini")
    recipes.mini_figure(c)
    c.sweep.seeds = (0, 1, 2)  # about a minute per trial here: the paper's 3 trials
    c.sweep.title = "Fig 14 mini: self-distillation vs α (CIFAR-10)"
  else:
    c = recipes.paper_figure("fig14_alpha")
    c.sweep.title = ("Fig 14: self-distillation PreResNet-56 vs α (CIFAR-100; paper: α > 0 helps "
                     "accuracy, not agreement)")
  c.distill.teacher_members = 1         # self-distillation
  c.sweep.arms = tuple((f"alpha_{a:g}", {"distill.alpha": a}) for a in ALPHAS)
  c.sweep.x_key = "distill.alpha"
  c.sweep.x_label = "α (weight of the hard-label loss)"
  c.sweep.metrics = ("test_agreement", "test_student_acc")
  c.sweep.paper = ()                   # PAPER.md gives no numbers (see the title)
  return c
