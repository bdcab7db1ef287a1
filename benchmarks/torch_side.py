"""The PyTorch side of each benchmark row: the same work as jax_side's, on the same shapes."""
from __future__ import annotations

import torch

from benchmarks import torch_ref
from benchmarks.jax_side import OPTIM, Case, random_split


def _tensors(batch: int, shape: tuple, classes: int, seed: int):
  x, y = random_split(batch, 1, shape, classes, seed)
  return torch.from_numpy(x), torch.from_numpy(y).long()


def _models(model: str, classes: int, count: int, train: bool) -> list[torch.nn.Module]:
  torch.manual_seed(0)
  return [torch_ref.build(model, classes).train(train) for _ in range(count)]


def distill_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
                 augment: bool) -> Case:
  student = _models(model, classes, 1, True)[0]
  teachers = _models(model, classes, members, False)
  opt = torch_ref.optimizer([student], OPTIM["lr"], OPTIM["weight_decay"])
  x, _ = _tensors(batch, shape, classes, 0)
  gen = torch.Generator().manual_seed(0)

  def run() -> None:
    for _ in range(steps_):
      torch_ref.distill_step(student, teachers, opt, x, augment, 4.0, gen).item()

  return Case(run, torch_ref.param_count(student))


def teacher_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
                 augment: bool) -> Case:
  nets = _models(model, classes, members, True)
  opt = torch_ref.optimizer(nets, OPTIM["lr"], OPTIM["weight_decay"])
  data = [_tensors(batch, shape, classes, i) for i in range(members)]
  gen = torch.Generator().manual_seed(0)

  def run() -> None:
    for _ in range(steps_):
      torch_ref.teacher_step(nets, opt, [d[0] for d in data], [d[1] for d in data], augment,
                             gen).item()

  return Case(run, torch_ref.param_count(nets[0]))


def eval_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
              augment: bool) -> Case:
  del augment
  nets = _models(model, classes, members, False)
  x, _ = _tensors(batch, shape, classes, 0)

  def run() -> None:
    for _ in range(steps_):
      torch_ref.eval_logits(nets, x).sum().item()

  return Case(run, torch_ref.param_count(nets[0]))


CASES = {"distill": distill_case, "teacher": teacher_case, "eval": eval_case}
