"""``kd_jax.carry``: a stopped run's workdir and teacher store packed into size-capped parts,
unpacked elsewhere, and resumed there to the numbers of one uninterrupted run (bitwise: same
program, same machine); a damaged or missing part, an oversized pack and a bad path are one
line each, and nothing is written then.

Expectations come from an uninterrupted run, from hashlib in the test, and from file trees the
test builds by hand.
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import pytest

from kd_jax import carry as carry_cli
from kd_jax.core import budget, carry
from kd_jax.core.errors import ConfigError, OutOfTime
from kd_jax.runner import experiment
from tiny import FakeClock, tiny_config


def _tree(root: Path, files: dict[str, bytes]) -> None:
  for rel, data in files.items():
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def test_what_travels():
  """Logs, orbax leftovers and the cache stay; every step travels unless latest_only, which
  also leaves a finished store entry's training checkpoints behind."""
  import tempfile
  root = Path(tempfile.mkdtemp())
  _tree(root, {"config.json": b"{}", "metrics.jsonl": b"1\n",
               "tensorboard/events": b"x", "jax_cache/prog": b"c",
               "checkpoints/student/3/d": b"3", "checkpoints/student/12/d": b"12",
               "checkpoints/student/4.unreadable/d": b"u",
               "checkpoints/student/5.orbax-checkpoint-tmp-1/d": b"t",
               "teachers/k-m1.partial/ckpt/2/d": b"2", "teachers/k-m1.partial/ckpt/10/d": b"10",
               "seed1/results.json": b"{}",
               "teachers/done-m5/teacher.json": b"{}", "teachers/done-m5/final/0/d": b"f",
               "teachers/done-m5/ckpt/8/d": b"8"})
  rel = lambda files: sorted(f.relative_to(root).as_posix() for f in files)
  common = ["config.json", "metrics.jsonl", "seed1/results.json",
            "teachers/done-m5/final/0/d", "teachers/done-m5/teacher.json"]
  assert rel(carry.carried_files(root)) == sorted(common + [
      "checkpoints/student/12/d", "checkpoints/student/3/d", "teachers/done-m5/ckpt/8/d",
      "teachers/k-m1.partial/ckpt/10/d", "teachers/k-m1.partial/ckpt/2/d"])
  assert rel(carry.carried_files(root, latest_only=True)) == sorted(common + [
      "checkpoints/student/12/d", "teachers/k-m1.partial/ckpt/10/d"])  # newest by number;
  # a finished entry (teacher.json beside it) without its training checkpoints
  assert "jax_cache/prog" in rel(carry.carried_files(root, with_cache=True))
  shutil.rmtree(root)


def test_a_stopped_run_packed_unpacked_elsewhere_resumes_to_the_same_numbers(tmp_path):
  """Each budgeted call runs on a "fresh machine": the previous call's folders are deleted and
  only its packed parts (64 KiB each, --latest_only) are unpacked under new paths. The calls
  stop inside the teacher (a .partial store entry) and inside distillation (the teacher a
  finished entry, travelling without its training checkpoints)."""
  straight = experiment.run(tiny_config(tmp_path / "s0", teacher_epochs=4, distill_epochs=4),
                            tmp_path / "straight")
  phases, parts = [], None
  for call in range(1, 10):
    work, store = tmp_path / f"work{call}", tmp_path / f"store{call}"
    if parts is not None:
      carry.unpack(parts, work, "run")
      carry.unpack(parts, store, "store")
      shutil.rmtree(tmp_path / f"work{call - 1}")
      shutil.rmtree(tmp_path / f"store{call - 1}")
    # Budget 45 from a clock at 10: three checkpoints a call (test_time_budget.py).
    budget.start(45, FakeClock(10))
    try:
      result = experiment.run(tiny_config(store, teacher_epochs=4, distill_epochs=4), work)
      break
    except OutOfTime as e:
      phases.append((e.phase, bool(list(store.glob("*.partial")))))
    finally:
      budget.start(0)
    parts = tmp_path / f"parts{call}"
    m_run = carry.pack(work, parts, "run", part_bytes=64 << 10, latest_only=True)
    m_store = carry.pack(store, parts, "store", part_bytes=64 << 10, latest_only=True)
    for m in (m_run, m_store):
      for p in m["parts"]:
        data = (parts / p["file"]).read_bytes()
        assert len(data) == p["bytes"] <= 64 << 10
        assert hashlib.sha256(data).hexdigest() == p["sha256"]
  else:
    raise AssertionError(f"not finished after 9 calls: {phases}")
  assert ("teacher", True) in phases and ("distill", False) in phases, phases
  assert result["splits"] == straight["splits"]


def _packed(tmp_path: Path) -> Path:
  _tree(tmp_path / "w", {"a.json": b"{}", "checkpoints/1/x": bytes(range(256)) * 64})
  carry.pack(tmp_path / "w", tmp_path / "p", part_bytes=1024)
  return tmp_path / "p"


def test_a_damaged_or_missing_part_is_one_line_and_nothing_is_written(tmp_path):
  parts = _packed(tmp_path)
  manifest = json.loads((parts / "state.json").read_text())
  last = parts / manifest["parts"][-1]["file"]
  data = bytearray(last.read_bytes())
  data[0] ^= 1
  last.write_bytes(bytes(data))
  with pytest.raises(ConfigError, match=rf"^{last} does not match its sha256 in state\.json"):
    carry.unpack(parts, tmp_path / "out")
  assert not (tmp_path / "out").exists()
  last.unlink()
  with pytest.raises(ConfigError, match=rf"^{last} is missing: copy every part"):
    carry.unpack(parts, tmp_path / "out")
  assert not (tmp_path / "out").exists()


def test_an_oversized_pack_names_its_largest_files_and_leaves_no_parts(tmp_path):
  noise = random.Random(0).randbytes(1 << 18)   # 0.25 MiB that gzip cannot shrink
  _tree(tmp_path / "w", {"small.json": b"{}", "big.bin": noise})
  with pytest.raises(ConfigError, match=r"packs into .* MiB, over the 0\.1 MiB allowed; "
                     r"largest: big\.bin \(0\.2 MiB\), small\.json"):
    carry.pack(tmp_path / "w", tmp_path / "p", max_bytes=int(0.1 * carry.MiB))
  assert not list((tmp_path / "p").glob("state.*"))


def test_command_line_round_trip_and_bad_paths(tmp_path, capsys):
  _tree(tmp_path / "w", {"a.json": b'{"k": 1}', "sub/b.txt": b"b"})
  carry_cli.main(["pack", str(tmp_path / "w"), str(tmp_path / "p"), "--part_mib=1"])
  carry_cli.main(["unpack", str(tmp_path / "p"), str(tmp_path / "w2")])
  assert (tmp_path / "w2" / "a.json").read_bytes() == b'{"k": 1}'
  assert (tmp_path / "w2" / "sub" / "b.txt").read_bytes() == b"b"
  capsys.readouterr()
  for argv, said in ((["pack", str(tmp_path / "nope"), str(tmp_path / "p")], "is not a folder"),
                     (["unpack", str(tmp_path / "w"), str(tmp_path / "w3")], "is missing"),
                     (["pack", str(tmp_path / "w"), str(tmp_path / "p"), "--part_mib=0"],
                      "must be positive"),
                     (["pack", str(tmp_path / "w"), str(tmp_path / "w" / "out")],
                      "inside"),
                     (["pack", str(tmp_path / "w"), str(tmp_path / "p"), "--name=a/b"],
                      "letters, digits")):
    with pytest.raises(SystemExit) as e:
      carry_cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and said in err[0], err


def test_a_pack_reaching_outside_its_workdir_is_refused(tmp_path):
  """Parts that match their manifest but hold a path with '..' (not pack's output) write
  nothing, not even inside the workdir."""
  import gzip
  import io
  import tarfile
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w") as tar:
    for name in ("ok.json", "../evil.txt"):
      info = tarfile.TarInfo(name)
      info.size = 2
      tar.addfile(info, io.BytesIO(b"{}"))
  blob = gzip.compress(buf.getvalue())
  (tmp_path / "p").mkdir()
  (tmp_path / "p" / "state.tgz.000").write_bytes(blob)
  (tmp_path / "p" / "state.json").write_text(json.dumps(
      {"name": "state", "parts": [{"file": "state.tgz.000", "bytes": len(blob),
                                   "sha256": hashlib.sha256(blob).hexdigest()}]}))
  with pytest.raises(ConfigError, match=r"unpacks to '\.\./evil\.txt', outside a workdir"):
    carry.unpack(tmp_path / "p", tmp_path / "w" / "run")
  assert not (tmp_path / "w" / "evil.txt").exists() and not (tmp_path / "w" / "run").exists()
