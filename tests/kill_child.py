"""Tiny runs of the real code that SIGKILL themselves at a chosen file-system write (or a chosen
time after a phase begins), for tests/test_kill_anywhere.py.

    python tests/kill_child.py        # then one JSON spec per line on stdin

A server: it imports kd_jax once (no JAX backend yet), then for every spec forks a child that
runs it and answers with one line, the child's exit status (-9: killed). Forking spares each
run the imports of jax, orbax and kd_jax. The spec names the kind of run (``run``: teacher
ensemble + student; ``gan``; ``sweep``: two trials sharing a teacher), its root folder, the phases (name, path regex) in the order the run
goes through them, and the kill: ``{"phase": i, "nth": k}`` dies just before the k-th write
event of phase i, or the first event of a later phase, or the end of the run, whichever comes
first;
``{"phase": i, "after_s": t}`` dies t seconds after the first event of phase i or later, or at
the end of the run, whichever comes first (so every kill lands). A
write event is a file opened for writing, a rename, a mkdir/rmdir/unlink or an rmtree on a
path that a phase's regex matches (what tensorstore writes inside orbax happens between them).
With ``events`` set, every phase event is appended to that file as ``phase<TAB>path``; the
child's output goes to ``log``.
"""
from __future__ import annotations

import builtins
import io
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

_orig_open = builtins.open
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT


def _die() -> None:
  os.kill(os.getpid(), signal.SIGKILL)


class Watch:
  """Counts a run's write events by phase and kills the process where the spec says."""

  def __init__(self, spec: dict):
    self.phases = [(name, re.compile(rx)) for name, rx in spec["phases"]]
    self.kill = spec.get("kill")
    self.log = _orig_open(spec["events"], "a", buffering=1) if spec.get("events") else None
    self.count = [0] * len(self.phases)
    self.timer_started = False

  def phase(self, *paths) -> int:
    """The first phase whose regex matches the path (a rename: its target, then its source)."""
    for p in reversed(paths):
      if isinstance(p, int):
        continue
      text = os.fsdecode(os.path.abspath(os.fspath(p)))
      for i, (_, rx) in enumerate(self.phases):
        if rx.search(text):
          return i
    return -1

  def event(self, *paths) -> None:
    """Called before every write event: logs it, counts it, and dies when the spec says."""
    i = self.phase(*paths)
    if i < 0:
      return
    if self.log is not None:
      self.log.write(f"{i}\t{os.fspath(paths[-1])}\n")
    if self.kill is None:
      return
    target = self.kill["phase"]
    if "nth" in self.kill:
      if i == target:
        self.count[i] += 1
      if i > target or (i == target and self.count[i] >= self.kill["nth"]):
        _die()
    elif i >= target and not self.timer_started:
      self.timer_started = True
      delay = self.kill["after_s"]
      threading.Thread(target=lambda: (time.sleep(delay), _die()), daemon=True).start()

  def finished(self) -> None:
    """The run is over: a kill not reached yet lands here, after the last write (a rerun
    resuming less than the drawn count, or ending before the drawn instant, still ends
    killed)."""
    if self.kill is not None:
      _die()

  def install(self) -> None:
    event = self.event

    def wrap_open(orig):
      def opened(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
          event(file)
        return orig(file, mode, *args, **kwargs)
      return opened

    def wrap(orig, nargs=1):
      def wrapped(*args, **kwargs):
        event(*args[:nargs])
        return orig(*args, **kwargs)
      return wrapped

    orig_os_open = os.open

    def os_open(path, flags, *args, **kwargs):
      if flags & _WRITE_FLAGS and "dir_fd" not in kwargs:
        event(path)
      return orig_os_open(path, flags, *args, **kwargs)

    builtins.open = io.open = wrap_open(builtins.open)
    os.open = os_open
    os.rename, os.replace = wrap(os.rename, 2), wrap(os.replace, 2)
    os.mkdir, os.rmdir = wrap(os.mkdir), wrap(os.rmdir)
    os.remove, os.unlink = wrap(os.remove), wrap(os.unlink)
    shutil.rmtree = wrap(shutil.rmtree)


def run(spec: dict) -> None:
  """The run the spec names (in the forked child)."""
  root = Path(spec["root"])
  if spec["kind"] == "run":
    experiment.run(tiny.tiny_kill_config(root / "store"), root / "run")
  elif spec["kind"] == "gan":
    c = tiny.small_gan_config(root / "gans")
    gans.get_gan(c.gan, gans.store_keys(c.gan, c.data), root, tiny.small_gan_images(),
                 tensorboard=False)
  elif spec["kind"] == "sweep":
    sweep.run_sweep(*kill_sweep(root / "sweep" / "teachers"), root / "sweep")
  else:
    raise SystemExit(f"unknown kind {spec['kind']!r}")


def kill_sweep(store: Path):
  """Two trials (arms a and b, one seed) sharing one teacher: the ``run`` kind's config, so
  that the teacher and arm b (its temperature) are the programs that run compiled; arm a
  distils at another temperature."""
  from kd_jax import config as config_lib
  c = tiny.tiny_kill_config(store)
  with c.unlocked():
    c.name = "tiny_sweep"
  s = config_lib.sweep_config()
  s.arms = (("a", {"distill.temperature": 1.0}),
            ("b", {"distill.temperature": float(c.distill.temperature)}))
  return c, s


def child(spec: dict) -> None:
  fd = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
  os.dup2(fd, 1)
  os.dup2(fd, 2)
  try:
    watch = Watch(spec)
    watch.install()
    run(spec)
    watch.finished()
  except BaseException:
    traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(0)


if __name__ == "__main__":
  sys.path.insert(0, str(Path(__file__).resolve().parent))
  from kd_jax.core import cache
  from kd_jax.runner import experiment, gans
  from kd_jax.sweeps import sweep
  # What the runs import on first use, imported once here rather than in every child (no
  # threads start: forking stays safe): the store lock's filelock, the GAN's PNG writer,
  # the sweep's plots (matplotlib's Figure, its Agg canvas and fonts).
  from filelock import SoftFileLease  # noqa: F401
  import matplotlib.backends.backend_agg  # noqa: F401
  import matplotlib.figure  # noqa: F401
  import matplotlib.ticker  # noqa: F401
  import PIL.Image
  import PIL.PngImagePlugin  # noqa: F401
  import tiny
  from matplotlib import font_manager
  font_manager.findfont("DejaVu Sans")
  PIL.Image.init()
  tiny.register_small_gan()
  cache.use_compile_cache(os.environ["KD_JAX_KILL_CACHE"])
  print("ready", flush=True)
  for line in sys.stdin:
    spec = json.loads(line)
    pid = os.fork()
    if pid == 0:
      child(spec)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
