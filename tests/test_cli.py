"""The command line as a user meets it: bad input is one line on stderr and exit status 2."""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, JAX_PLATFORMS="cpu",
           PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _main(*args: str, module: str = "kd_jax.main", cwd: Path = REPO
          ) -> subprocess.CompletedProcess:
  """``python -m <module> <args>``: a fresh Python process."""
  return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=ENV,
                        capture_output=True, text=True, timeout=120)


# A fresh process per command spends ~3 s importing JAX, Flax, SciPy and kd_jax before it reads
# a flag. The server below imports those once; each command then runs in a process forked from
# it, which executes the entry point's module anew as __main__ (runpy, as `python -m` does; the
# server never imports kd_jax.main or kd_jax.sweep themselves, nor starts JAX's backend), with
# its own stdout and stderr, cwd, argv and added environment variables, and exits as Python
# would. `test_a_forked_command_line_prints_what_a_fresh_process_prints` checks that it prints
# byte for byte what `python -m` prints.
_SERVER = r'''
import atexit, json, os, runpy, signal, sys, threading, traceback
import jax, absl.app, absl.flags, absl.logging, ml_collections.config_flags
import kd_jax.cli, kd_jax.config_files, kd_jax.core.cache, kd_jax.core.distributed
import kd_jax.runner.estimate, kd_jax.runner.experiment, kd_jax.sweeps.sweep
assert "kd_jax.main" not in sys.modules and "kd_jax.sweep" not in sys.modules
channel = os.fdopen(os.dup(1), "w")
requests = os.fdopen(os.dup(0), "r")


def exit_status(code):
  if code is None:
    return 0
  if isinstance(code, int):
    return code & 0xFF
  print(code, file=sys.stderr)
  return 1


def child(r):
  status = 1
  try:
    channel.close()
    requests.close()
    os.chdir(r["cwd"])
    for fd, path, flags in ((0, os.devnull, os.O_RDONLY),
                            (1, r["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, r["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
      f = os.open(path, flags, 0o644)
      os.dup2(f, fd)
      os.close(f)
    sys.path[0] = os.getcwd()  # `python -m` puts the current directory first
    sys.path[1:1] = r["pythonpath"]
    if r["pythonpath"]:
      os.environ["PYTHONPATH"] = os.pathsep.join(r["pythonpath"] +
                                                 [os.environ.get("PYTHONPATH", "")])
    os.environ.update(r["env"])  # read when a command runs, as in a fresh process
    sys.argv = [r["module"], *r["args"]]
    status = 0
    try:
      runpy.run_module(r["module"], run_name="__main__", alter_sys=True)
    except SystemExit as e:
      status = exit_status(e.code)
    except BaseException:
      traceback.print_exc()
      status = 1
    threading._shutdown()  # what the interpreter does at exit: wait for threads, then atexit
    atexit._run_exitfuncs()
  finally:
    try:
      sys.stdout.flush()
      sys.stderr.flush()
    finally:
      os._exit(status)


for line in iter(requests.readline, ""):
  r = json.loads(line)
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:
    child(r)
  channel.write(json.dumps({"pid": pid}) + "\n")
  channel.flush()
  _, status = os.waitpid(pid, 0)
  channel.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
  channel.flush()
'''


class CommandLine:
  """``python -m <module> <args>`` (status, stdout, stderr) in a process forked from a server
  that has imported what every run imports (see _SERVER)."""

  def __init__(self, env: dict = ENV):
    self.server = subprocess.Popen([sys.executable, "-c", _SERVER], cwd=REPO, env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    self.unread = b""

  def _reply(self, timeout: float, pid: int = 0) -> dict:
    """The server's next line; after ``timeout`` seconds without it, the child is killed."""
    deadline = time.monotonic() + timeout
    fd = self.server.stdout.fileno()
    while b"\n" not in self.unread:
      ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
      if not ready:
        if pid:
          os.kill(pid, signal.SIGKILL)
        raise subprocess.TimeoutExpired("forked command line", timeout)
      chunk = os.read(fd, 65536)
      assert chunk, f"the command-line server died (status {self.server.wait()})"
      self.unread += chunk
    line, self.unread = self.unread.split(b"\n", 1)
    return json.loads(line)

  def run(self, *args: str, module: str = "kd_jax.main", cwd: Path = REPO,
          pythonpath: tuple[str, ...] = (), timeout: float = 120, env: dict | None = None
          ) -> subprocess.CompletedProcess:
    """``env``: variables set in the command's process only (on top of the server's)."""
    with tempfile.TemporaryDirectory(prefix="kd_jax_cli_") as out:
      request = {"module": module, "args": list(args), "cwd": str(cwd),
                 "pythonpath": [str(p) for p in pythonpath], "env": dict(env or {}),
                 "stdout": os.path.join(out, "stdout"), "stderr": os.path.join(out, "stderr")}
      self.server.stdin.write((json.dumps(request) + "\n").encode())
      self.server.stdin.flush()
      pid = self._reply(600)["pid"]  # the first waits for the server's imports
      status = self._reply(timeout, pid)["returncode"]
      read = lambda name: Path(out, name).read_text()
      return subprocess.CompletedProcess([module, *args], status, read("stdout"), read("stderr"))

  def close(self) -> None:
    self.server.stdin.close()
    self.server.wait(timeout=60)


@pytest.fixture(scope="module")
def cli():
  server = CommandLine()
  yield server
  server.close()


def test_a_forked_command_line_prints_what_a_fresh_process_prints(cli, tmp_path):
  """The forked runs below stand for `python -m`: here both run the same commands, an error
  while absl parses the flags and a figure file's note then an error from main, and print the
  same bytes with the same exit status (one line, or the note and one line; status 2)."""
  for args in (["--config=configs/mnist.py:tiny", f"--workdir={tmp_path / 'w'}",
                "--config.distill.temprature=2"],
               ["--config=configs/fig3_augmentation.py:mini", f"--workdir={tmp_path / 'w'}",
                "--config.distill.temperature=-1"]):
    fresh, forked = _main(*args), cli.run(*args)
    assert fresh.returncode == 2 and fresh.stderr.strip().splitlines()[-1].startswith("error: ")
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        fresh.returncode, fresh.stdout, fresh.stderr), args


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
def test_bad_input_is_one_line(cli, tmp_path, extra, needle):
  out = cli.run("--config=configs/mnist.py:tiny", f"--workdir={tmp_path / 'w'}", *extra)
  assert out.returncode == 2, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
  assert needle in lines[0]


def test_unwritable_workdir_and_missing_config(cli, tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a folder")
  out = cli.run("--config=configs/mnist.py:tiny", f"--workdir={blocker / 'sub'}")
  assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
  assert "is not writable" in out.stderr
  out = cli.run("--config=configs/no_such.py", f"--workdir={tmp_path}")
  assert out.returncode == 2
  assert out.stderr.strip().startswith(
      "error: --config=configs/no_such.py: no such config file; configs holds: ")
  assert "fig3_augmentation.py, " in out.stderr and "\n" not in out.stderr.strip()


def test_paper_config_without_cifar100_says_how_to_get_it(cli, tmp_path):
  out = cli.run("--config=configs/cifar100.py", f"--workdir={tmp_path / 'w'}",
                f"--config.data.data_dir={tmp_path / 'tfds'}")
  assert out.returncode == 2
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1, out.stderr
  assert f"tfds build cifar100 --data_dir={tmp_path / 'tfds'}" in lines[0]
  assert 'pip install -e ".[prepare]"' in lines[0]


def test_help_points_to_print_config_and_exits_0(cli):
  out = cli.run("--help")
  assert out.returncode == 0, out.stderr
  assert "--print_config" in out.stdout and "--restart" in out.stdout


def test_print_config_lists_every_key_without_a_workdir(cli, tmp_path):
  out = cli.run(f"--config={REPO / 'configs/mnist.py'}:tiny", "--config.distill.temperature=2",
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


def test_workdir_is_required_to_run(cli):
  out = cli.run("--config=configs/mnist.py:tiny")
  assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
  assert "--workdir is required" in out.stderr


def test_workdir_of_another_config_is_one_line(cli, tmp_path):
  from kd_jax import cli as cli_lib
  from kd_jax.config import to_json
  old = cli_lib.load_config_file("configs/mnist.py:tiny")
  old.distill.temperature = 1.0
  (tmp_path / "config.json").write_text(to_json(old))
  (tmp_path / "checkpoints").mkdir()
  out = cli.run("--config=configs/mnist.py:tiny", f"--workdir={tmp_path}")
  assert out.returncode == 2
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1, out.stderr
  assert "distill.temperature was 1.0, now 4.0" in lines[0] and "--restart" in lines[0]


def test_figure_config_says_main_runs_the_base_config_only(cli, tmp_path):
  out = cli.run("--config=configs/fig3_augmentation.py:mini", f"--workdir={tmp_path / 'w'}",
                "--config.distill.temperature=-1")
  assert out.returncode == 2
  note, error = out.stderr.strip().splitlines()
  assert note == ("note: this file defines 12 sweep arms; kd_jax.main runs the base config "
                  "only; use python -m kd_jax.sweep to run the figure")
  assert error.startswith("error: ") and "distill.temperature" in error
  plain = cli.run("--config=configs/mnist.py:tiny", f"--workdir={tmp_path / 'w'}",
                  "--config.distill.temperature=-1")
  assert "note:" not in plain.stderr


def test_sweep_dry_run_needs_no_workdir(cli, tmp_path):
  # Fig 2's mini reads the embedded MNIST: the dry run's data check passes on any machine.
  out = cli.run(f"--config={REPO / 'configs/fig2_mnist.py'}:mini", "--dry_run",
                module="kd_jax.sweep", cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  default = Path("runs") / "fig2_mnist_mini"
  assert out.stdout.splitlines()[0] == (f"[sweep] no --workdir given: using {default} "
                                        "(runs/<config name>)")
  assert f"trials → {default}" in out.stdout
  assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_readme_error_examples_are_what_the_commands_print(cli):
  """The README shows commands with the error they print: run each, compare the line."""
  text = (REPO / "README.md").read_text()
  examples = re.findall(r"^    \$ (python -m kd_jax\.\S+ .*)\n    (error: .*)$", text, re.M)
  assert len(examples) >= 2
  for command, shown in examples:
    args = command.split()[3:]
    out = cli.run(*args, module=command.split()[2])
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
