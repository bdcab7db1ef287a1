"""The official code's input pipeline: a torch DataLoader over a Dataset that transforms each
image on the host in ``__getitem__``.

gnosis builds torchvision's CIFAR dataset with ``Compose([RandomCrop(32, padding=4),
RandomHorizontalFlip(), ToTensor(), Normalize(0.5, 0.5)])`` ("unitcube" normalization: [-1, 1])
and a ``torch.utils.data.DataLoader(batch_size=128, shuffle=True)`` with no ``num_workers``, i.e.
0: every image is transformed in the training process, one at a time. torchvision is not a
dependency here, so the same per-image operations are written out below the way torchvision
runs them on a PIL image (CIFAR's ``__getitem__`` makes one with ``Image.fromarray``): zero
border by ``ImageOps.expand``, ``Image.crop`` at an offset from ``torch.randint``, a flip by
``Image.transpose`` when ``torch.rand(1) < 0.5``, then uint8 HWC → float CHW / 255, then
``(x - 0.5) / 0.5``.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps

PAD, SIZE = 4, 32


def crop_flip(img: Image.Image, top: int, left: int, flip: bool) -> Image.Image:
  """RandomCrop(32, padding=4) at (top, left) of the padded image, then the optional flip."""
  out = ImageOps.expand(img, border=PAD, fill=0).crop((left, top, left + SIZE, top + SIZE))
  return out.transpose(Image.FLIP_LEFT_RIGHT) if flip else out


def to_normalized_tensor(img: Image.Image) -> torch.Tensor:
  """ToTensor (HWC uint8 → CHW float in [0, 1]) then Normalize(mean 0.5, std 0.5)."""
  x = torch.from_numpy(np.array(img, np.uint8, copy=True)).permute(2, 0, 1).contiguous()
  x = x.to(torch.float32).div(255)
  return x.clone().sub_(0.5).div_(0.5)


class HostTransformed(torch.utils.data.Dataset):
  """uint8 NHWC images and labels; each item is transformed on its own, on the host."""

  def __init__(self, images_u8: np.ndarray, labels: np.ndarray, augment: bool = True):
    self.images, self.labels, self.augment = images_u8, labels, augment

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
    img = Image.fromarray(self.images[i])
    if self.augment:
      top, left = (int(torch.randint(0, 2 * PAD + 1, (1,))) for _ in range(2))
      img = crop_flip(img, top, left, bool(torch.rand(1) < 0.5))
    return to_normalized_tensor(img), int(self.labels[i])


def loader(images_u8: np.ndarray, labels: np.ndarray, batch: int,
           workers: int) -> torch.utils.data.DataLoader:
  """The official code's loader: shuffled, last batch kept, ``workers`` processes (0 there)."""
  return torch.utils.data.DataLoader(HostTransformed(images_u8, labels), batch_size=batch,
                                     shuffle=True, drop_last=False, num_workers=workers,
                                     persistent_workers=workers > 0)
