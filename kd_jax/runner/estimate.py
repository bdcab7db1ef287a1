"""How long a config will take on the devices found, said before it starts.

A paper-scale config started on a CPU would otherwise begin a run of weeks without a word. The
estimate is deliberately rough: training images/s of one device for one model family (the
table below) × the images a run trains on (epochs × examples × members), with a distillation
step of an m-member teacher costing (3 + m)/3 training steps (a forward pass ≈ a third of a
training step). Evaluation, data loading and compilation are left out, so real runs take longer.

``THROUGHPUT`` rows, training img/s per device in float32 for the family's reference model:

- ``cpu``: measured on this project's 2-core CPU shared with other jobs (jax 0.10.2,
  2026-12-04) with kd_jax's teacher step, as ``python -m benchmarks.throughput`` times it (one
  member, batch 128, crop + flip at 32 px; median of 3 timed epochs after compiling): LeNet-5 on
  28 px 2,321 img/s; PreResNet-56 13 img/s (load average 3–8; 9 img/s in a second try at load
  average 9–13); PreResNet-20 21; PreResNet-8 at width 0.25 299, which sets the fixed cost
  (370 img/s) so that the formula below gives 299 for it (it gives 34 for PreResNet-20, 1.6×
  the measured 21: the estimate is rough).
- ``gpu`` and ``tpu``: assumptions, not measurements (the A100/H100-class numbers of
  experiments/README.md; no TPU number was measured, so the TPU row repeats the GPU row).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from ml_collections import ConfigDict

#: Above this many hours the run says so before it starts.
WARN_HOURS = 2.0

#: (img/s of one device training the family's reference model, img/s of the family's smallest
#: models: fixed costs per image cap the speed-up of shrinking a model; None: no cap known).
THROUGHPUT: dict[str, dict[str, tuple[float, Optional[float]]]] = {
    "cpu": {"lenet5": (2321.0, None), "preresnet": (13.0, 370.0)},
    "gpu": {"lenet5": (30000.0, None), "preresnet": (5000.0, None), "vgg": (2500.0, None),
            "resnet50": (3000.0, None)},
    "tpu": {"lenet5": (30000.0, None), "preresnet": (5000.0, None), "vgg": (2500.0, None),
            "resnet50": (3000.0, None)},
}
#: Where each backend's row comes from, printed with the estimate.
BASIS = {"cpu": "measured on a 2-core CPU",
         "gpu": "assumed for an A100/H100-class GPU, not measured",
         "tpu": "assumed (the GPU row), not measured"}
#: Model name → (family, reference depth). Seconds per image = fixed + (seconds per image of
#: the reference − fixed) × depth/reference depth × width²: compute grows with depth × width².
FAMILIES = {"lenet5": ("lenet5", 0), "preresnet": ("preresnet", 56),
            "preresnet20": ("preresnet", 56), "preresnet56": ("preresnet", 56),
            "preresnet110": ("preresnet", 56), "resnet20_ln": ("preresnet", 56),
            "vgg": ("vgg", 0), "vgg16": ("vgg", 0), "vgg19": ("vgg", 0),
            "resnet": ("resnet50", 0), "resnet50": ("resnet50", 0)}
DEPTHS = {"preresnet20": 20, "preresnet56": 56, "preresnet110": 110, "resnet20_ln": 20}
#: Train-split sizes of the sets configs name, so an estimate needs no data loaded.
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "mnist": 60_000, "svhn_cropped": 73_257,
               "imagenet2012": 1_281_167, "mnist_embedded": 5_000}


@dataclasses.dataclass(frozen=True)
class Work:
  """Training images of one phase and the model that trains on them."""
  model: ConfigDict
  images: float  # epochs × examples × members (× (3 + m)/3 for distillation)


def throughput(backend: str, model: Any) -> Optional[float]:
  """img/s of one device training ``model`` (a ``model_config``), or None if not in the table."""
  name = str(model["name"])
  if name not in FAMILIES or backend not in THROUGHPUT:
    return None
  family, ref_depth = FAMILIES[name]
  if family not in THROUGHPUT[backend]:
    return None
  ref_rate, fastest = THROUGHPUT[backend][family]
  width = float(model.get("width", 1.0) or 1.0)
  depth = int(model.get("depth", DEPTHS.get(name, ref_depth)) or ref_depth)
  cost = (depth / ref_depth if ref_depth else 1.0) * width ** 2  # FLOPs, relative
  fixed = 1.0 / fastest if fastest else 0.0  # seconds per image whatever the model's size
  return 1.0 / (cost * (1.0 / ref_rate - fixed) + fixed)


def _train_size(data: ConfigDict) -> Optional[int]:
  n = TRAIN_SIZES.get(str(data.name) or str(data.source))
  if n is not None and data.source in ("mnist_embedded",) and data.test_size:
    n -= int(data.test_size)  # the test set is carved from the embedded images
  return n


def sizes(data: ConfigDict) -> tuple[Optional[int], Optional[int]]:
  """(teacher examples, distillation examples) from the config alone; None where unknown."""
  n = _train_size(data)
  half = None if n is None else n // 2
  pool = {"train": n, "d0": half}.get(str(data.teacher_pool))
  teacher = int(data.teacher_subset) or pool
  rest = None if n is None or teacher is None else n - teacher
  distill_pool = {"rest": rest, "teacher": teacher, "train": n, "d0": half,
                  "d1": None if n is None else n - n // 2}.get(str(data.distill_pool))
  distill = int(data.distill_subset) or distill_pool
  if distill is not None:
    distill += int(data.ood.num)
  return teacher, distill


def teacher_work(data: ConfigDict, teacher: ConfigDict, members: int = 0) -> Optional[Work]:
  """Training the teacher ensemble (``members`` of it; 0 = ``teacher.ensemble_size``)."""
  teacher_n, _ = sizes(data)
  if teacher_n is None:
    return None
  m = members or int(teacher.ensemble_size)
  return Work(teacher.model, float(teacher.epochs) * teacher_n * m)


def student_work(data: ConfigDict, teacher: ConfigDict, distill: ConfigDict) -> Optional[Work]:
  """Distilling one student: each step runs the first m teacher members forward."""
  _, distill_n = sizes(data)
  if distill_n is None:
    return None
  m = int(distill.teacher_members or teacher.ensemble_size)
  return Work(distill.model, float(distill.epochs) * distill_n * (3 + m) / 3)


def seconds(work: list[Optional[Work]], backend: str, devices: int) -> Optional[float]:
  """Estimated seconds for all of ``work`` on ``devices`` devices (None: something unknown).
  CPU devices share the same cores, so only accelerators add throughput per device."""
  total = 0.0
  for w in work:
    rate = None if w is None else throughput(backend, w.model)
    if rate is None:
      return None
    total += w.images / (rate * (devices if backend != "cpu" else 1))
  return total


def run_work(data: ConfigDict, teacher: ConfigDict, distill: ConfigDict,
             teacher_stored: bool) -> list[Optional[Work]]:
  """What one ``kd_jax.main`` run trains: the student, and the teacher unless stored."""
  return (([] if teacher_stored else [teacher_work(data, teacher)])
          + [student_work(data, teacher, distill)])


def warning(secs: Optional[float], backend: str, devices: int,
            what: str = "this run") -> Optional[str]:
  """The one line printed before a run estimated to take over ``WARN_HOURS``, else None."""
  if secs is None or secs <= WARN_HOURS * 3600:
    return None
  hint = ("; a paper-scale config needs a GPU or TPU (docs/reproduce.md)"
          if backend == "cpu" else "")
  return (f"[estimate] {what} will take {hours(secs)} on {devices} × {backend}: "
          f"{basis(backend)}{hint}")


def basis(backend: str) -> str:
  """How rough the estimate is, in words."""
  return (f"a rough estimate from training img/s {BASIS.get(backend, 'assumed')} "
          "(kd_jax/runner/estimate.py)")


def hours(secs: float) -> str:
  h = secs / 3600
  if h >= 48:
    return f"about {h:,.0f} h ({h / 24:,.1f} days)"
  return f"about {h:.1f} h" if h >= 1 else f"about {secs / 60:.0f} min"


# --------------------------------------------------------------------------- devices


def backend_devices() -> tuple[str, int]:
  """(jax's default backend: cpu | gpu | tpu, number of local devices)."""
  import jax
  return jax.default_backend(), jax.local_device_count()


def describe_devices() -> str:
  """``[devices] 1 × NVIDIA H200 (cuda)`` / ``[devices] 4 × cpu (cpu)``: what jax will run on."""
  import jax
  counts: dict[str, int] = {}
  for d in jax.local_devices():
    kind = str(getattr(d, "device_kind", "") or d.platform)
    counts[kind] = counts.get(kind, 0) + 1
  platform = _platform_name(jax.local_devices()[0])
  more = f", {jax.process_count()} processes" if jax.process_count() > 1 else ""
  return "[devices] " + ", ".join(f"{n} × {k}" for k, n in counts.items()) + \
      f" ({platform}{more})"


def _platform_name(device: Any) -> str:
  """cuda / rocm for GPUs (jax calls both "gpu"), else jax's platform name."""
  if device.platform != "gpu":
    return str(device.platform)
  version = str(getattr(getattr(device, "client", None), "platform_version", "")).lower()
  return "rocm" if "rocm" in version else "cuda"


# --------------------------------------------------------------------------- at start


def teacher_stored(data: ConfigDict, teacher: ConfigDict, workdir: Any, members: int = 0) -> bool:
  """Whether the store already holds this teacher (then a run only distills). Data that is
  not there yet is keyed by its config (``missing_ok``): such a teacher is never stored."""
  from pathlib import Path
  from kd_jax.runner import identity, teachers
  return identity.find_teacher(
      teachers.store_dir(teacher, Path(workdir)), data, teacher,
      members or int(teacher.ensemble_size), missing_ok=True) is not None


def announce(config: ConfigDict, workdir: Any) -> None:
  """The devices line, and the estimate line when the run looks long (``kd_jax.main``); a bad
  config fails here as it would in the run (ConfigError), never inside the estimate."""
  from kd_jax.runner.validate import validate
  print(describe_devices(), flush=True)
  validate(config)
  backend, n = backend_devices()
  stored = teacher_stored(config.data, config.teacher, workdir)
  secs = seconds(run_work(config.data, config.teacher, config.distill, stored), backend, n)
  line = warning(secs, backend, n)
  if line:
    print(line, flush=True)
