"""The PyTorch reference: the same models and steps as kd_jax, written plainly (eager, CPU).

Architectures follow kd_jax.models (and the official code they follow): bias-free PreResNet
convs, the 1x1 projection of the raw block input, LeNet-5 with average pooling. Parameter
counts are checked against kd_jax's before anything is timed. The augmentation (zero-pad 4,
random 32x32 window, horizontal flip with p = 0.5) runs batched inside the step, like kd_jax's,
on whatever device the images are on.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

STAGE_WIDTHS = (16, 32, 64)
STAGE_STRIDES = (1, 2, 2)


class LeNet5(nn.Module):
  def __init__(self, num_classes: int, in_channels: int = 1):
    super().__init__()
    self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
    self.conv2 = nn.Conv2d(6, 16, 5)
    self.fc1, self.fc2 = nn.Linear(400, 120), nn.Linear(120, 84)
    self.fc3 = nn.Linear(84, num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = F.avg_pool2d(F.relu(self.conv1(x)), 2)
    x = F.avg_pool2d(F.relu(self.conv2(x)), 2).flatten(1)
    return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
  return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class Basic(nn.Module):
  expansion = 1

  def __init__(self, cin: int, planes: int, stride: int):
    super().__init__()
    self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv(cin, planes, 3, stride)
    self.bn2, self.conv2 = nn.BatchNorm2d(planes), _conv(planes, planes, 3)
    self.proj = _conv(cin, planes, 1, stride) if stride != 1 or cin != planes else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = self.conv1(F.relu(self.bn1(x)))
    y = self.conv2(F.relu(self.bn2(y)))
    return y + (x if self.proj is None else self.proj(x))


class Bottleneck(nn.Module):
  expansion = 4

  def __init__(self, cin: int, planes: int, stride: int):
    super().__init__()
    out = planes * 4
    self.bn1, self.conv1 = nn.BatchNorm2d(cin), _conv(cin, planes, 1)
    self.bn2, self.conv2 = nn.BatchNorm2d(planes), _conv(planes, planes, 3, stride)
    self.bn3, self.conv3 = nn.BatchNorm2d(planes), _conv(planes, out, 1)
    self.proj = _conv(cin, out, 1, stride) if stride != 1 or cin != out else None

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = self.conv1(F.relu(self.bn1(x)))
    y = self.conv2(F.relu(self.bn2(y)))
    y = self.conv3(F.relu(self.bn3(y)))
    return y + (x if self.proj is None else self.proj(x))


class PreResNet(nn.Module):
  def __init__(self, depth: int, num_classes: int):
    super().__init__()
    block, n = (Basic, (depth - 2) // 6) if depth < 44 else (Bottleneck, (depth - 2) // 9)
    self.stem = _conv(3, STAGE_WIDTHS[0], 3)
    layers, cin = [], STAGE_WIDTHS[0]
    for planes, stride in zip(STAGE_WIDTHS, STAGE_STRIDES):
      for b in range(n):
        layers.append(block(cin, planes, stride if b == 0 else 1))
        cin = planes * block.expansion
    self.blocks = nn.Sequential(*layers)
    self.final_norm, self.head = nn.BatchNorm2d(cin), nn.Linear(cin, num_classes)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = F.relu(self.final_norm(self.blocks(self.stem(x))))
    return self.head(y.mean((2, 3)))


def build(name: str, num_classes: int) -> nn.Module:
  """The reference of a kd_jax model name (lenet5, preresnet20, preresnet56)."""
  if name == "lenet5":
    return LeNet5(num_classes)
  return PreResNet(int(name.removeprefix("preresnet")), num_classes)


def param_count(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())


def optimizer(models: Sequence[nn.Module], lr: float, weight_decay: float) -> torch.optim.SGD:
  """SGD with Nesterov momentum 0.9 and coupled weight decay (kd_jax's sgd recipe)."""
  params = [p for m in models for p in m.parameters()]
  return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def prepare(images_u8: torch.Tensor, augment: bool, gen: torch.Generator) -> torch.Tensor:
  """uint8 NHWC → [-1, 1] NCHW, with the batched crop(4) + hflip when ``augment``."""
  x = images_u8.permute(0, 3, 1, 2).float().div_(255.0)
  if augment:
    (b, c, h, w), dev = x.shape, x.device
    padded = F.pad(x, (4, 4, 4, 4))
    off = torch.randint(0, 9, (2, b), generator=gen, device=dev)
    rows = (off[0][:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (off[1][:, None] + torch.arange(w, device=dev))[:, None, None, :]
    x = padded[torch.arange(b, device=dev)[:, None, None, None],
               torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    flip = torch.rand(b, generator=gen, device=dev) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
  return x.mul_(2.0).sub_(1.0)


def teacher_logprobs(teachers: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
  """log of the mean member probability, as kd_jax.kd.ensemble.ensemble_logprobs."""
  with torch.no_grad():
    logp = torch.stack([F.log_softmax(t(x), -1) for t in teachers])
    return torch.logsumexp(logp, 0) - math.log(len(teachers))


def distill_step(student: nn.Module, teachers: Sequence[nn.Module], opt: torch.optim.Optimizer,
                 images_u8: torch.Tensor, augment: bool, temperature: float,
                 gen: torch.Generator) -> torch.Tensor:
  """Teacher forward (eval) + student forward/backward (train) + update; returns agreement."""
  return distill_update(student, teachers, opt, prepare(images_u8, augment, gen), temperature)


def distill_update(student: nn.Module, teachers: Sequence[nn.Module], opt: torch.optim.Optimizer,
                   x: torch.Tensor, temperature: float) -> torch.Tensor:
  """The step on model inputs ``x`` (NCHW float), however they were prepared."""
  targets = teacher_logprobs(teachers, x)
  logits = student(x)
  p_t = F.softmax(targets / temperature, -1)
  loss = -(temperature ** 2) * (p_t * F.log_softmax(logits / temperature, -1)).sum(-1).mean()
  opt.zero_grad(set_to_none=True)
  loss.backward()
  opt.step()
  return (logits.argmax(-1) == targets.argmax(-1)).sum().detach()


def teacher_step(members: Sequence[nn.Module], opt: torch.optim.Optimizer,
                 images_u8: Sequence[torch.Tensor], labels: Sequence[torch.Tensor],
                 augment: bool, gen: torch.Generator) -> torch.Tensor:
  """One cross-entropy step of every member on its own batch (members are separate models)."""
  opt.zero_grad(set_to_none=True)
  correct = torch.zeros((), dtype=torch.long, device=images_u8[0].device)
  for m, u8, y in zip(members, images_u8, labels):
    logits = m(prepare(u8, augment, gen))
    F.cross_entropy(logits, y).backward()
    correct += (logits.argmax(-1) == y).sum().detach()
  opt.step()
  return correct


def eval_logits(members: Sequence[nn.Module], images_u8: torch.Tensor) -> torch.Tensor:
  with torch.no_grad():
    x = prepare(images_u8, False, torch.Generator())
    return torch.stack([m(x) for m in members])
