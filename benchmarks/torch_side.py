"""The PyTorch side of each benchmark row: the same work as jax_side's, on the same shapes.

Options (keyword-only, defaults = eager float32 on the CPU): ``device`` ("cuda" on a GPU),
``compile`` (a ``torch.compile`` backend for every model, e.g. "inductor"; "" = eager) and
``bf16`` (autocast to bfloat16). The step's
agreement count is read back once per timed call, as kd_jax reads its sums once per epoch.
"""
from __future__ import annotations

import contextlib

import torch

from benchmarks import host_loader, torch_ref
from benchmarks.jax_side import OPTIM, Case, random_split


def _tensors(batch: int, shape: tuple, classes: int, seed: int, device: str):
  x, y = random_split(batch, 1, shape, classes, seed)
  return torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)


def _models(model: str, classes: int, count: int, train: bool, device: str,
            compile_: str) -> tuple[list[torch.nn.Module], list[torch.nn.Module]]:
  """(modules as they run, their parameters' owners): compiled wrappers share the weights."""
  torch.manual_seed(0)
  nets = [torch_ref.build(model, classes).train(train).to(device) for _ in range(count)]
  return ([torch.compile(n, backend=compile_) for n in nets] if compile_ else nets), nets


def _autocast(device: str, bf16: bool):
  if not bf16:
    return contextlib.nullcontext
  return lambda: torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)


def distill_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
                 augment: bool, *, device: str = "cpu", compile: str = "",
                 bf16: bool = False) -> Case:
  (student,), owners = _models(model, classes, 1, True, device, compile)
  teachers, _ = _models(model, classes, members, False, device, compile)
  opt = torch_ref.optimizer(owners, OPTIM["lr"], OPTIM["weight_decay"])
  x, _ = _tensors(batch, shape, classes, 0, device)
  gen, amp = torch.Generator(device).manual_seed(0), _autocast(device, bf16)

  def run() -> None:
    agree = 0
    for _ in range(steps_):
      with amp():
        agree = agree + torch_ref.distill_step(student, teachers, opt, x, augment, 4.0, gen)
    int(agree)

  return Case(run, torch_ref.param_count(owners[0]))


def teacher_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
                 augment: bool, *, device: str = "cpu", compile: str = "",
                 bf16: bool = False) -> Case:
  nets, owners = _models(model, classes, members, True, device, compile)
  opt = torch_ref.optimizer(owners, OPTIM["lr"], OPTIM["weight_decay"])
  data = [_tensors(batch, shape, classes, i, device) for i in range(members)]
  gen, amp = torch.Generator(device).manual_seed(0), _autocast(device, bf16)

  def run() -> None:
    correct = 0
    for _ in range(steps_):
      with amp():
        correct = correct + torch_ref.teacher_step(nets, opt, [d[0] for d in data],
                                                   [d[1] for d in data], augment, gen)
    int(correct)

  return Case(run, torch_ref.param_count(owners[0]))


def eval_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
              augment: bool, *, device: str = "cpu", compile: str = "",
              bf16: bool = False) -> Case:
  del augment
  nets, owners = _models(model, classes, members, False, device, compile)
  x, _ = _tensors(batch, shape, classes, 0, device)
  amp = _autocast(device, bf16)

  def run() -> None:
    total = 0
    for _ in range(steps_):
      with amp():
        total = total + torch_ref.eval_logits(nets, x).float().sum()
    float(total)

  return Case(run, torch_ref.param_count(owners[0]))


def epoch_case(model: str, classes: int, shape: tuple, batch: int, steps_: int, members: int,
               augment: bool, *, workers: int = 0, device: str = "cpu", compile: str = "",
               bf16: bool = False) -> Case:
  """One distillation epoch over ``batch × steps_`` images fed by the official code's loader
  (per-image host transforms, ``workers`` loader processes)."""
  del augment  # the loader's per-image transforms augment
  (student,), owners = _models(model, classes, 1, True, device, compile)
  teachers, _ = _models(model, classes, members, False, device, compile)
  opt = torch_ref.optimizer(owners, OPTIM["lr"], OPTIM["weight_decay"])
  images, labels = random_split(batch, steps_, shape, classes, 0)
  data = host_loader.loader(images, labels, batch, workers)
  amp = _autocast(device, bf16)

  def run() -> None:
    agree = 0
    for x, _ in data:
      with amp():
        agree = agree + torch_ref.distill_update(student, teachers, opt, x.to(device), 4.0)
    int(agree)

  return Case(run, torch_ref.param_count(owners[0]))


CASES = {"distill": distill_case, "teacher": teacher_case, "eval": eval_case,
         "epoch": epoch_case}
