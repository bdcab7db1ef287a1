"""The command line as a user meets it: bad input is one line on stderr and exit status 2."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, JAX_PLATFORMS="cpu",
           PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _main(*args: str, module: str = "kd_jax.main", cwd: Path = REPO
          ) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=ENV,
                        capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("extra,needle", [
    (["--config.distill.temprature=2"],
     "--config.distill.temprature: the config has no key 'temprature'; did you mean 'temperature'?"),
    (["--config.distill.model.name=resnet9"],
     "distill.model.name='resnet9' is not a known model"),
    (["--config.model.name=lenet6"],
     "--config.model.name: the config has no key 'model' at its top level; did you mean "
     "--config.distill.model.name or --config.gan.model.name or --config.teacher.model.name?"),
    (["--config.temperature=2"], "did you mean --config.distill.temperature?"),
    (["--config.distill.model.widht=2"],
     "no key 'widht' in distill.model; --print_config lists every key"),
    (["--config.distill.augment=crop+flpi"], "separate ops by '|'"),
    (["--config.distill.augment=crop|flpi"], "unknown op 'flpi'; ops (separated by '|'): crop,"),
    (["--config.distill.temperature=-1"], "distill.temperature"),
    (["--config.teacher.optim.name=sgdd"], "optim.name='sgdd'"),
    (["--config.data.teacher_subset=9000"], "data.teacher_subset=9000"),
])
def test_bad_input_is_one_line(tmp_path, extra, needle):
  out = _main("--config=configs/mnist.py:tiny", f"--workdir={tmp_path / 'w'}", *extra)
  assert out.returncode == 2, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
  assert needle in lines[0]


def test_unwritable_workdir_and_missing_config(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  out = _main("--config=configs/mnist.py:tiny", f"--workdir={blocker / 'sub'}")
  assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
  assert "is not writable" in out.stderr
  out = _main("--config=configs/no_such.py", f"--workdir={tmp_path}")
  assert out.returncode == 2
  assert out.stderr.strip() == "error: --config=configs/no_such.py: no such config file"


def test_paper_config_without_cifar100_says_how_to_get_it(tmp_path):
  out = _main("--config=configs/cifar100.py", f"--workdir={tmp_path / 'w'}",
              f"--config.data.data_dir={tmp_path / 'tfds'}")
  assert out.returncode == 2
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1, out.stderr
  assert f"tfds build cifar100 --data_dir={tmp_path / 'tfds'}" in lines[0]
  assert 'pip install -e ".[prepare]"' in lines[0]


def test_help_points_to_print_config_and_exits_0():
  out = _main("--help")
  assert out.returncode == 0, out.stderr
  assert "--print_config" in out.stdout and "--restart" in out.stdout


def test_print_config_lists_every_key_without_a_workdir(tmp_path):
  out = _main(f"--config={REPO / 'configs/mnist.py'}:tiny", "--config.distill.temperature=2",
              "--print_config", cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  lines = out.stdout.splitlines()
  assert "distill.temperature = 2.0" in lines and "teacher.epochs = 6" in lines
  from kd_jax import config as config_lib
  from kd_jax.runner import identity as rundir
  every = rundir.flat(config_lib.base_config().to_dict())
  shown = {l.split(" = ")[0] for l in lines}
  assert set(every) <= shown  # every key of the schema, each as --config.<key> sets it
  assert list(tmp_path.iterdir()) == []  # wrote nothing


def test_workdir_is_required_to_run():
  out = _main("--config=configs/mnist.py:tiny")
  assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
  assert "--workdir is required" in out.stderr


def test_workdir_of_another_config_is_one_line(tmp_path):
  from kd_jax import cli
  from kd_jax.config import to_json
  old = cli.load_config_file("configs/mnist.py:tiny")
  old.distill.temperature = 1.0
  (tmp_path / "config.json").write_text(to_json(old))
  (tmp_path / "checkpoints").mkdir()
  out = _main("--config=configs/mnist.py:tiny", f"--workdir={tmp_path}")
  assert out.returncode == 2
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1, out.stderr
  assert "distill.temperature was 1.0, now 4.0" in lines[0] and "--restart" in lines[0]


def test_figure_config_says_main_runs_the_base_config_only(tmp_path):
  out = _main("--config=configs/fig3_augmentation.py:mini", f"--workdir={tmp_path / 'w'}",
              "--config.distill.temperature=-1")
  assert out.returncode == 2
  note, error = out.stderr.strip().splitlines()
  assert note == ("note: this file defines 12 sweep arms; kd_jax.main runs the base config "
                  "only; use python -m kd_jax.sweep to run the figure")
  assert error.startswith("error: ") and "distill.temperature" in error
  plain = _main("--config=configs/mnist.py:tiny", f"--workdir={tmp_path / 'w'}",
                "--config.distill.temperature=-1")
  assert "note:" not in plain.stderr


def test_sweep_dry_run_needs_no_workdir(tmp_path):
  out = _main(f"--config={REPO / 'configs/fig3_augmentation.py'}:mini", "--dry_run",
              module="kd_jax.sweep", cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  default = Path("runs") / "fig3_augmentation_mini"
  assert out.stdout.splitlines()[0] == (f"[sweep] no --workdir given: using {default} "
                                        "(runs/<config name>)")
  assert f"trials → {default}" in out.stdout
  assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_readme_error_examples_are_what_the_commands_print():
  """The README shows commands with the error they print: run each, compare the line."""
  text = (REPO / "README.md").read_text()
  examples = re.findall(r"^    \$ (python -m kd_jax\.\S+ .*)\n    (error: .*)$", text, re.M)
  assert len(examples) >= 2
  for command, shown in examples:
    args = command.split()[3:]
    out = _main(*args, module=command.split()[2])
    assert out.returncode == 2, (command, out.stderr)
    printed = out.stderr.strip().splitlines()[-1]
    assert printed.startswith(shown.removesuffix("...").rstrip()), (command, printed)


def test_ctrl_c_is_one_line_and_exit_130(tmp_path):
  """SIGINT as a terminal sends it, once training has started: one line, status 130."""
  # 500 teacher epochs: the run cannot end before the signal lands, however slow the machine.
  # A suite started in the background by a non-interactive shell (as CI may start it) passes
  # SIGINT on as ignored; a terminal's foreground process has Python's handler: install it,
  # then run `python -m kd_jax.main` unchanged.
  as_terminal = ("import runpy, signal, sys; signal.signal(signal.SIGINT, "
                 "signal.default_int_handler); sys.argv[0] = 'kd_jax.main'; "
                 "runpy.run_module('kd_jax.main', run_name='__main__', alter_sys=True)")
  proc = subprocess.Popen(
      [sys.executable, "-c", as_terminal, "--config=configs/mnist.py:tiny",
       "--config.teacher.epochs=500", f"--workdir={tmp_path / 'w'}"], cwd=REPO, env=ENV,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 90
    for line in proc.stdout:  # the first epoch's progress line
      if line.startswith("[teacher] epoch 1/500") or time.time() > deadline:
        break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
  finally:
    proc.kill()
  assert proc.returncode == 130, err
  lines = err.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in err, err
  assert re.fullmatch(r"interrupted after epoch [0-9]+/500 of teacher.*; rerun the same "
                      r"command to resume", lines[0]), lines[0]
