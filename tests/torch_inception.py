"""pytorch-fid's FID Inception written with torch alone, and the stored outputs it gives.

``python tests/torch_inception.py`` (with torch and kd_jax installed) rewrites
``tests/data/inception_reference.npz``: the outputs (pool features, logits; float64) of this
network with ``random_state_dict(seed)`` weights on fixed images. ``tests/test_inception.py``
compares kd_jax's network with them in every test run, torch or not, and with the live network
when torch is installed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

REFERENCE = {"file": Path(__file__).parent / "data" / "inception_reference.npz", "seed": 4}


def reference_inputs() -> np.ndarray:
  return np.random.default_rng(5).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)


def torch_reference(torch):
  """pytorch-fid's fid_inception_v3 structure (torchvision Inception3 + FID patches), written
  with torch alone."""
  nn, F = torch.nn, torch.nn.functional

  class Basic(nn.Module):
    def __init__(self, i, o, **kw):
      super().__init__()
      self.conv = nn.Conv2d(i, o, bias=False, **kw)
      self.bn = nn.BatchNorm2d(o, eps=0.001)

    def forward(self, x):
      return F.relu(self.bn(self.conv(x)))

  def avg(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

  class A(nn.Module):
    def __init__(self, i, pf):
      super().__init__()
      self.branch1x1 = Basic(i, 64, kernel_size=1)
      self.branch5x5_1 = Basic(i, 48, kernel_size=1)
      self.branch5x5_2 = Basic(48, 64, kernel_size=5, padding=2)
      self.branch3x3dbl_1 = Basic(i, 64, kernel_size=1)
      self.branch3x3dbl_2 = Basic(64, 96, kernel_size=3, padding=1)
      self.branch3x3dbl_3 = Basic(96, 96, kernel_size=3, padding=1)
      self.branch_pool = Basic(i, pf, kernel_size=1)

    def forward(self, x):
      return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                        self.branch_pool(avg(x))], 1)

  class B(nn.Module):
    def __init__(self, i):
      super().__init__()
      self.branch3x3 = Basic(i, 384, kernel_size=3, stride=2)
      self.branch3x3dbl_1 = Basic(i, 64, kernel_size=1)
      self.branch3x3dbl_2 = Basic(64, 96, kernel_size=3, padding=1)
      self.branch3x3dbl_3 = Basic(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
      return torch.cat([self.branch3x3(x),
                        self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                        F.max_pool2d(x, 3, stride=2)], 1)

  class C(nn.Module):
    def __init__(self, i, c):
      super().__init__()
      self.branch1x1 = Basic(i, 192, kernel_size=1)
      self.branch7x7_1 = Basic(i, c, kernel_size=1)
      self.branch7x7_2 = Basic(c, c, kernel_size=(1, 7), padding=(0, 3))
      self.branch7x7_3 = Basic(c, 192, kernel_size=(7, 1), padding=(3, 0))
      self.branch7x7dbl_1 = Basic(i, c, kernel_size=1)
      self.branch7x7dbl_2 = Basic(c, c, kernel_size=(7, 1), padding=(3, 0))
      self.branch7x7dbl_3 = Basic(c, c, kernel_size=(1, 7), padding=(0, 3))
      self.branch7x7dbl_4 = Basic(c, c, kernel_size=(7, 1), padding=(3, 0))
      self.branch7x7dbl_5 = Basic(c, 192, kernel_size=(1, 7), padding=(0, 3))
      self.branch_pool = Basic(i, 192, kernel_size=1)

    def forward(self, x):
      b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
      bd = self.branch7x7dbl_1(x)
      for k in range(2, 6):
        bd = getattr(self, f"branch7x7dbl_{k}")(bd)
      return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(avg(x))], 1)

  class D(nn.Module):
    def __init__(self, i):
      super().__init__()
      self.branch3x3_1 = Basic(i, 192, kernel_size=1)
      self.branch3x3_2 = Basic(192, 320, kernel_size=3, stride=2)
      self.branch7x7x3_1 = Basic(i, 192, kernel_size=1)
      self.branch7x7x3_2 = Basic(192, 192, kernel_size=(1, 7), padding=(0, 3))
      self.branch7x7x3_3 = Basic(192, 192, kernel_size=(7, 1), padding=(3, 0))
      self.branch7x7x3_4 = Basic(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
      b7 = x
      for k in range(1, 5):
        b7 = getattr(self, f"branch7x7x3_{k}")(b7)
      return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7,
                        F.max_pool2d(x, 3, stride=2)], 1)

  class E(nn.Module):
    def __init__(self, i, max_pool):
      super().__init__()
      self.max_pool = max_pool
      self.branch1x1 = Basic(i, 320, kernel_size=1)
      self.branch3x3_1 = Basic(i, 384, kernel_size=1)
      self.branch3x3_2a = Basic(384, 384, kernel_size=(1, 3), padding=(0, 1))
      self.branch3x3_2b = Basic(384, 384, kernel_size=(3, 1), padding=(1, 0))
      self.branch3x3dbl_1 = Basic(i, 448, kernel_size=1)
      self.branch3x3dbl_2 = Basic(448, 384, kernel_size=3, padding=1)
      self.branch3x3dbl_3a = Basic(384, 384, kernel_size=(1, 3), padding=(0, 1))
      self.branch3x3dbl_3b = Basic(384, 384, kernel_size=(3, 1), padding=(1, 0))
      self.branch_pool = Basic(i, 192, kernel_size=1)

    def forward(self, x):
      b3 = self.branch3x3_1(x)
      bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
      pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else avg(x)
      return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                        self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd),
                        self.branch_pool(pooled)], 1)

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.Conv2d_1a_3x3 = Basic(3, 32, kernel_size=3, stride=2)
      self.Conv2d_2a_3x3 = Basic(32, 32, kernel_size=3)
      self.Conv2d_2b_3x3 = Basic(32, 64, kernel_size=3, padding=1)
      self.Conv2d_3b_1x1 = Basic(64, 80, kernel_size=1)
      self.Conv2d_4a_3x3 = Basic(80, 192, kernel_size=3)
      self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
      self.Mixed_6a = B(288)
      self.Mixed_6b, self.Mixed_6c = C(768, 128), C(768, 160)
      self.Mixed_6d, self.Mixed_6e = C(768, 160), C(768, 192)
      self.Mixed_7a = D(768)
      self.Mixed_7b, self.Mixed_7c = E(1280, False), E(2048, True)
      self.fc = nn.Linear(2048, 1008)

    def forward(self, u8):   # pytorch-fid: [0, 1] → resize 299 → 2x − 1
      x = u8.permute(0, 3, 1, 2).to(self.fc.weight.dtype) / 255.0
      x = 2 * F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
      x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
      x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, stride=2)))
      x = F.max_pool2d(x, 3, stride=2)
      for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
        x = getattr(self, f"Mixed_{name}")(x)
      pool = x.mean(dim=(2, 3))
      return pool, pool @ self.fc.weight.T   # IS: the classifier without its bias

  return Net()


def main() -> None:
  import torch
  from random_inception import random_state_dict
  net = torch_reference(torch).eval()
  state = random_state_dict(REFERENCE["seed"])
  net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
  images = reference_inputs()
  with torch.no_grad():
    pool, logits = (t.double().numpy() for t in net.double()(torch.from_numpy(images)))
  REFERENCE["file"].parent.mkdir(exist_ok=True)
  np.savez_compressed(REFERENCE["file"], images=images, pool=pool, logits=logits,
                      seed=REFERENCE["seed"], torch=torch.__version__)
  print(f"wrote {REFERENCE['file']} (torch {torch.__version__})")


if __name__ == "__main__":
  import sys
  sys.path.insert(0, str(Path(__file__).parent))
  main()
