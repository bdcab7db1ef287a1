"""Host-side ImageNet transforms on decoded files: random-resized crop + flip, resize + center crop.

These run in the streamed pipeline's grain threads (``kd_jax.data.image_files``), before the
batch reaches the devices, because ImageNet files have every size and the crop must see the
whole decoded image. They follow torchvision's definitions (the standard ImageNet recipe):

* train: ``RandomResizedCrop(size, scale=(min_scale, 1), ratio=(3/4, 4/3))`` then a horizontal
  flip with probability 1/2. A box of area fraction U(scale) and log-uniform aspect ratio is
  drawn up to 10 times until it fits; else the whole image, center-cropped to the nearest
  allowed aspect ratio. The box is resized to ``size × size`` (bilinear, Pillow).
* eval: the shorter side resized to ``resize`` (bilinear; the longer side to
  ``int(resize · long / short)``), then the central ``size × size`` crop.

Randomness comes from a numpy Generator the caller seeds per example from (seed, stream,
epoch, step, member, position), so a resumed run draws the same crops.
"""
from __future__ import annotations

import dataclasses
import io
import math

import numpy as np

Box = tuple[int, int, int, int]   # (left, top, width, height) in pixels
RATIO = (3 / 4, 4 / 3)


def decode_rgb(data: bytes):
  """Encoded image bytes → an RGB Pillow image (grayscale / CMYK / palette files converted)."""
  from PIL import Image
  im = Image.open(io.BytesIO(data))
  return im if im.mode == "RGB" else im.convert("RGB")


def random_resized_box(width: int, height: int, rng: np.random.Generator,
                       scale: tuple[float, float] = (0.08, 1.0),
                       ratio: tuple[float, float] = RATIO) -> Box:
  """The crop box of RandomResizedCrop (see the module docstring)."""
  area = width * height
  log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
  for _ in range(10):
    target = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(log_lo, log_hi))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return left, top, w, h
  in_ratio = width / height          # fallback: the whole image at an allowed aspect ratio
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    w, h = int(round(height * ratio[1])), height
  else:
    w, h = width, height
  return (width - w) // 2, (height - h) // 2, w, h


def _as_array(im) -> np.ndarray:
  return np.asarray(im, dtype=np.uint8)


@dataclasses.dataclass(frozen=True)
class ImageTransform:
  """Output ``size``; eval resize of the shorter side; smallest crop area fraction."""
  size: int = 224
  resize: int = 256
  min_scale: float = 0.08

  def train(self, im, rng: np.random.Generator) -> np.ndarray:
    """Random-resized crop to ``size × size`` and a coin-flip horizontal flip."""
    from PIL import Image
    left, top, w, h = random_resized_box(im.width, im.height, rng, (self.min_scale, 1.0))
    out = im.crop((left, top, left + w, top + h)).resize((self.size, self.size),
                                                         Image.BILINEAR)
    arr = _as_array(out)
    return arr[:, ::-1] if rng.random() < 0.5 else arr

  def eval(self, im) -> np.ndarray:
    """Shorter side to ``resize``, then the central ``size × size``."""
    from PIL import Image
    short, long = min(im.width, im.height), max(im.width, im.height)
    other = int(self.resize * long / short)
    new = (self.resize, other) if im.width <= im.height else (other, self.resize)
    if new != (im.width, im.height):
      im = im.resize(new, Image.BILINEAR)
    top = int(round((im.height - self.size) / 2.0))
    left = int(round((im.width - self.size) / 2.0))
    return _as_array(im.crop((left, top, left + self.size, top + self.size)))
