"""Results folders from per-trial files: collect a sweep, rebuild it byte for byte, provenance
per trial (commit, diff, machine), dirty trees refused without a flag.

Expectations come from the files the trials wrote (results.json, metrics.jsonl, source.diff),
from hashlib/gzip in the test, and from fabricated provenance records.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from kd_jax import config_files
from kd_jax.core import provenance
from kd_jax.runner import experiment
from kd_jax.sweeps import rebuild, sweep

FIGURE = '''
from kd_jax.config import sweep_config
from tiny import tiny_config


def get_sweep(arg: str = ""):
  s = sweep_config()
  s.arms = (("t1", {"distill.temperature": 1.0}), ("t4", {"distill.temperature": 4.0}))
  s.seeds = (0, 1)
  s.metrics = ("test/agreement", "distill/agreement")
  return s


def get_config(arg: str = ""):
  c = tiny_config(store="", devices=0)
  c.unlock()
  c.name = "tiny_publish"
  return c
'''


@pytest.fixture(scope="module")
def figure_file(tmp_path_factory) -> Path:
  path = tmp_path_factory.mktemp("figure") / "tiny_publish.py"
  path.write_text(FIGURE)
  return path


def command(figure_file: Path, workdir: Path) -> str:
  return f"python -m kd_jax.sweep --config={figure_file} --workdir={workdir}"


def run(figure_file: Path, workdir: Path) -> None:
  c, s = config_files.load(str(figure_file)), config_files.load_sweep(str(figure_file))
  sweep.run_sweep(c, s, workdir, command=command(figure_file, workdir))


def rows(path: Path) -> list[dict[str, str]]:
  with path.open() as f:
    return list(csv.DictReader(f))


def strings(value) -> list[str]:
  if isinstance(value, dict):
    return [s for v in value.values() for s in strings(v)]
  if isinstance(value, list):
    return [s for v in value for s in strings(v)]
  return [value] if isinstance(value, str) else []


@pytest.fixture(scope="module")
def published(figure_file, tmp_path_factory):
  """A real tiny sweep (2 arms × 2 seeds), collected into a results folder."""
  root = tmp_path_factory.mktemp("publish")
  run(figure_file, root / "run")
  out = rebuild.collect(root / "run", root / "results", allow_dirty=True)
  return root / "run", out


def test_collect_copies_every_trial_and_its_epochs(published):
  workdir, out = published
  for arm in ("t1", "t4"):
    for seed in (0, 1):
      src, dst = workdir / arm / f"seed{seed}", out / "trials" / arm / f"seed{seed}"
      with gzip.open(dst / "metrics.jsonl.gz", "rb") as f:
        assert f.read() == (src / "metrics.jsonl").read_bytes()
      got = json.loads((dst / "results.json").read_text())
      want = json.loads((src / "results.json").read_text())
      assert got["splits"] == want["splits"]
      assert json.loads((dst / "config.json").read_text())["distill"]["temperature"] == (
          1.0 if arm == "t1" else 4.0)
      # no machine's folder names travel with committed files
      for name in ("results.json", "config.json"):
        text = (dst / name).read_text()
        assert str(workdir.parent) not in text and str(Path.home()) + "/" not in text
  # the published CSV holds the same numbers as the sweep's own
  ours, theirs = rows(out / "results.csv"), rows(workdir / "results.csv")
  assert [(r["arm"], r["seed"], r["test/agreement"]) for r in ours] == [
      (r["arm"], r["seed"], r["test/agreement"]) for r in theirs]


def test_each_trial_records_its_code_and_machine(published):
  workdir, out = published
  res = json.loads((workdir / "t1" / "seed0" / "results.json").read_text())
  p = res["provenance"]
  assert p["machine"]["cores"] >= 1 and p["machine"]["backend"] == "cpu"
  assert p["machine"]["versions"]["jax"]
  assert p["machine"]["cpu"]["arch"]
  if p["dirty"]:  # the diff beside the results is what its sha256 names
    diff = (workdir / "t1" / "seed0" / provenance.DIFF_FILE).read_bytes()
    assert hashlib.sha256(diff).hexdigest() == p["diff_sha256"]
    assert (out / "diffs" / f"{p['diff_sha256']}.diff").read_bytes() == diff
  row = rows(out / "results.csv")[0]
  assert row["commit"] == provenance.code_label(p)
  assert row["machine"] == provenance.machine_label(p["machine"])
  md = (out / "results.md").read_text()
  assert f"- kd_jax commit: {provenance.code_label(p)}" in md
  assert f"- machine: {provenance.machine_label(p['machine'])}" in md


def test_rebuild_from_trials_is_byte_identical(published, tmp_path):
  _, out = published
  before = {n: (out / n).read_bytes() for n in ("results.csv", "results.md")}
  (out / "results.csv").unlink()
  (out / "results.md").write_text("stale\n")
  rebuild.main(["--rebuild", str(out)])
  assert {n: (out / n).read_bytes() for n in before} == before
  assert (out / "tiny_publish.png").read_bytes()[:4] == b"\x89PNG"


def fake(monkeypatch, provenances: dict) -> None:
  """experiment.run stand-in whose results.json carries the provenance given per arm."""
  def run(config, workdir, hook=None):
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(json.dumps(config.to_dict(), default=str))
    arm = workdir.parent.name
    p = dict(provenances[arm])
    if p.get("dirty"):
      diff = f"--- a/kd_jax/x.py\n+++ b/kd_jax/x.py\n+{arm}\n"
      (workdir / provenance.DIFF_FILE).write_text(diff)
      p["diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest()
    res = {"splits": {"test": {"agreement": 50.0 + config.seed}}, "wall_time_s": 1.0,
           "teacher": {"members_used": 1}, "provenance": p}
    (workdir / "results.json").write_text(json.dumps(res))
    return res
  monkeypatch.setattr(experiment, "run", run)


MACHINE = {"cpu": {"model": "Some CPU", "arch": "x86_64", "isa": "AVX2"}, "cores": 2,
           "backend": "cpu", "devices": "1 × cpu", "xla_flags": "", "versions": {"jax": "1"}}


def test_a_dirty_tree_is_refused_unless_asked_and_its_diff_travels(figure_file, tmp_path,
                                                                   monkeypatch, capsys):
  clean = {"commit": "aaaaaaa", "dirty": False, "machine": MACHINE, "finished": "2026-01-01T10:00"}
  dirty = dict(clean, commit="bbbbbbb", dirty=True, finished="2026-01-02T11:30")
  fake(monkeypatch, {"t1": clean, "t4": dirty})
  run(figure_file, tmp_path / "run")
  with pytest.raises(SystemExit) as e:
    rebuild.main(["--collect", str(tmp_path / "run"), "--out", str(tmp_path / "res")])
  assert e.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "t4/seed0" in err[0] and "--allow_dirty" in err[0]
  assert "t1/seed0" not in err[0] and not (tmp_path / "res").exists()
  out = rebuild.collect(tmp_path / "run", tmp_path / "res", allow_dirty=True)
  sha = json.loads((tmp_path / "run" / "t4" / "seed0" / "results.json").read_text())[
      "provenance"]["diff_sha256"]
  assert (out / "diffs" / f"{sha}.diff").read_text().endswith("+t4\n")
  md = (out / "results.md").read_text()
  # two commits: said per arm, never one of them for the whole table
  line = next(l for l in md.splitlines() if l.startswith("- kd_jax commit:"))
  assert "mixed" in line and "aaaaaaa: arm t1 (2 trials)" in line
  assert f"bbbbbbb+diff {sha[:8]}: arm t4 (2 trials)" in line
  assert "- date: 2026-01-01 10:00 – 2026-01-02 11:30" in md
  assert [r["commit"] for r in rows(out / "results.csv")] == (
      ["aaaaaaa"] * 2 + [f"bbbbbbb+diff {sha[:8]}"] * 2)


def test_machines_that_differ_are_named_per_arm(figure_file, tmp_path, monkeypatch):
  other = dict(MACHINE, cpu=dict(MACHINE["cpu"], model="Other CPU", isa="AVX-512"))
  base = {"commit": "aaaaaaa", "dirty": False, "finished": "2026-01-01T10:00"}
  fake(monkeypatch, {"t1": dict(base, machine=MACHINE), "t4": dict(base, machine=other)})
  run(figure_file, tmp_path / "run")
  md = (rebuild.collect(tmp_path / "run", tmp_path / "res") / "results.md").read_text()
  line = next(l for l in md.splitlines() if l.startswith("- machine:"))
  assert "several" in line
  assert "Some CPU (AVX2), 2 cores, jax 1: arm t1" in line
  assert "Other CPU (AVX-512), 2 cores, jax 1: arm t4" in line


def test_a_sweep_finished_by_several_only_commands_names_each(figure_file, tmp_path,
                                                              monkeypatch):
  # Two processes, one arm each (as on two cores): the header must not name only the last one.
  base = {"commit": "aaaaaaa", "dirty": False, "machine": MACHINE, "finished": "2026-01-01T10:00"}
  where = f"--config={figure_file} --workdir={tmp_path / 'run'}"
  fake(monkeypatch, {"t1": dict(base, command=f"sweep.py {where} --only=t1"),
                     "t4": dict(base, command=f"sweep.py {where} --only t4")})
  run(figure_file, tmp_path / "run")
  out = rebuild.collect(tmp_path / "run", tmp_path / "res")
  md = (out / "results.md").read_text()
  line = next(l for l in md.splitlines() if l.startswith("- command:"))
  assert line == (f"- command: `{command(figure_file, tmp_path / 'run')}`, run as 2 commands "
                  "that differ in `--only`: `--only=t1` (2 trials); `--only=t4` (2 trials)")
  assert "only" not in rows(out / "results.csv")[0]      # the header's, not a column
  (out / "results.md").write_text("stale\n")
  rebuild.main(["--rebuild", str(out)])
  assert (out / "results.md").read_text() == md


def test_a_trial_copied_from_another_figures_sweep_is_checked_and_named(published, tmp_path,
                                                                        capsys):
  """A trial another figure's sweep ran (its name and command differ, its trial config is the
  same) is published with a header line naming it; one whose config differs is refused."""
  run_dir, _ = published
  work = tmp_path / "run"
  shutil.copytree(run_dir, work)
  trial = work / "t4" / "seed1"
  for name in ("results.json", "config.json"):
    record = json.loads((trial / name).read_text())
    record["name"] = "other_figure"
    if name == "results.json":
      record["provenance"]["command"] = "sweep.py --config=configs/other.py:mini --workdir=x"
    (trial / name).write_text(json.dumps(record))
  md = (rebuild.collect(work, tmp_path / "res", allow_dirty=True) / "results.md").read_text()
  borrowed = [l for l in md.splitlines() if l.startswith("- run by another")]
  assert borrowed == ["- run by another figure's sweep: 1 of 4 trials, the same trial config but "
                      "for its `name` (checked when collected; their config.json and results.json "
                      "keep the name they ran under) — `--config=other.py:mini` ran t4 seed 1"]
  # The published folder restores (to finish a sweep elsewhere) with that trial in it.
  restored = rebuild.restore(tmp_path / "res", tmp_path / "again")
  assert "t4/seed1" in restored and len(restored) == 4
  c = json.loads((trial / "config.json").read_text())
  c["distill"]["alpha"] = 0.5
  (trial / "config.json").write_text(json.dumps(c))
  with pytest.raises(SystemExit):
    rebuild.main(["--collect", str(work), "--out", str(tmp_path / "res2"), "--allow_dirty"])
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "other_figure" in err[0] and "distill.alpha=0.5" in err[0]


def test_collect_carries_the_gan_the_trials_used(published, tmp_path, capsys):
  """A trial that names a GAN entry brings its metrics and last sample grid along; a GAN entry
  that is not on this machine is one line, and the collect still finishes."""
  run_dir, _ = published
  work = tmp_path / "run"
  shutil.copytree(run_dir, work)
  entry = tmp_path / "gans" / "gan-abc"
  (entry / "samples").mkdir(parents=True)
  (entry / "metrics.jsonl").write_text('{"phase": "gan", "step": 4}\n')
  for step, byte in ((2, b"a"), (4, b"b")):
    (entry / "samples" / f"step{step:07d}.png").write_bytes(byte)
  first = next(work.glob("t1/seed0/results.json"))
  record = json.loads(first.read_text())
  record["gan"] = {"entry": str(entry)}
  first.write_text(json.dumps(record))
  out = rebuild.collect(work, tmp_path / "res", allow_dirty=True)
  assert (out / "gan_metrics.jsonl").read_text() == '{"phase": "gan", "step": 4}\n'
  assert (out / "gan_samples_step0000004.png").read_bytes() == b"b"
  assert not (out / "gan_samples_step0000002.png").exists()
  shutil.rmtree(entry)
  rebuild.collect(work, tmp_path / "res2", allow_dirty=True)
  line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("[collect]"))
  assert str(entry) in line and "not here" in line
  assert not (tmp_path / "res2" / "gan_metrics.jsonl").exists()


def test_collect_needs_a_sweep_workdir(tmp_path, capsys):
  with pytest.raises(SystemExit):
    rebuild.main(["--collect", str(tmp_path), "--out", str(tmp_path / "res")])
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "sweep.json" in err[0]


def test_a_sweep_does_not_write_into_published_results(tmp_path):
  from kd_jax import sweep as sweep_cli
  from kd_jax.core.errors import ConfigError
  results = provenance.ROOT / "experiments" / "results"
  for inside in (results, results / "fig6_init_mini", results / "new" / "deeper"):
    with pytest.raises(ConfigError, match="--collect") as e:
      sweep_cli.check_not_published(inside)
    assert "\n" not in str(e.value)
  sweep_cli.check_not_published(tmp_path / "runs" / "fig6_init_mini")  # anywhere else is fine
  sweep_cli.check_not_published(provenance.ROOT / "experiments" / "resultsX")


def test_a_collected_partial_sweep_is_restored_and_only_the_rest_runs(figure_file, tmp_path,
                                                                     monkeypatch, capsys):
  clean = {"commit": "aaaaaaa", "dirty": False, "machine": MACHINE, "finished": "2026-01-01T10:00"}
  fake(monkeypatch, {"t1": clean, "t4": clean})
  run(figure_file, tmp_path / "first")
  epochs = tmp_path / "first" / "t1" / "seed0" / "metrics.jsonl"
  epochs.write_text('{"phase": "distill", "epoch": 1, "test": {"agreement": 50.0}}\n')
  plane = tmp_path / "first" / "t1" / "seed0" / "plane"   # an analysis output (Fig 6c's plane)
  plane.mkdir()
  (plane / "plane_agreement.png").write_bytes(b"\x89PNG fake plot")
  out = rebuild.collect(tmp_path / "first", tmp_path / "partial")
  import shutil
  shutil.rmtree(out / "trials" / "t4" / "seed1")  # the trial the first machine did not finish
  rebuild.main(["--restore", str(out), "--workdir", str(tmp_path / "second")])
  assert "restored 3 finished trial(s)" in capsys.readouterr().out
  ran = []
  real = experiment.run
  monkeypatch.setattr(experiment, "run",
                      lambda config, workdir, hook=None: ran.append(Path(workdir)) or real(
                          config, workdir, hook))
  run(figure_file, tmp_path / "second")
  assert [(p.parent.name, p.name) for p in ran] == [("t4", "seed1")]
  key = lambda r: (r["arm"], r["seed"], r["test/agreement"])
  assert [key(r) for r in rows(tmp_path / "second" / "results.csv")] == [
      key(r) for r in rows(tmp_path / "first" / "results.csv")]
  # epochs and analysis outputs travel back too, byte for byte, and a second collect keeps them
  assert (tmp_path / "second" / "t1" / "seed0" / "metrics.jsonl").read_bytes() == (
      epochs.read_bytes())
  again = rebuild.collect(tmp_path / "second", tmp_path / "whole")
  assert (again / "trials" / "t1" / "seed0" / "plane" / "plane_agreement.png").read_bytes() == (
      b"\x89PNG fake plot")


def test_restore_refuses_a_trial_of_another_config(figure_file, tmp_path, monkeypatch, capsys):
  clean = {"commit": "aaaaaaa", "dirty": False, "machine": MACHINE, "finished": "2026-01-01T10:00"}
  fake(monkeypatch, {"t1": clean, "t4": clean})
  run(figure_file, tmp_path / "first")
  out = rebuild.collect(tmp_path / "first", tmp_path / "partial")
  cfg = out / "trials" / "t1" / "seed0" / "config.json"
  c = json.loads(cfg.read_text())
  c["distill"]["alpha"] = 0.5
  cfg.write_text(json.dumps(c))
  with pytest.raises(SystemExit):
    rebuild.main(["--restore", str(out), "--workdir", str(tmp_path / "second")])
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "distill.alpha=0.5" in err[0] and "rerun it" in err[0]


def test_a_diverged_trial_stops_the_sweep_or_is_recorded_and_named(figure_file, tmp_path,
                                                                  monkeypatch):
  from kd_jax.core.errors import TrainingDiverged
  clean = {"commit": "aaaaaaa", "dirty": False, "machine": MACHINE, "finished": "2026-01-01T10:00"}
  fake(monkeypatch, {"t1": clean, "t4": clean})
  fine = experiment.run

  def run_or_diverge(config, workdir, hook=None):
    if Path(workdir).parent.name == "t4" and config.seed == 1:
      raise TrainingDiverged("[distill] non-finite loss in epoch 1 (member 0)")
    return fine(config, workdir, hook)
  monkeypatch.setattr(experiment, "run", run_or_diverge)
  c, s = config_files.load(str(figure_file)), config_files.load_sweep(str(figure_file))
  with pytest.raises(TrainingDiverged):
    sweep.run_sweep(c, s, tmp_path / "stop", command=command(figure_file, tmp_path / "stop"))
  with s.unlocked():
    s.diverged = "record"
  sweep.run_sweep(c, s, tmp_path / "go", command=command(figure_file, tmp_path / "go"))
  got = {(r["arm"], r["seed"]): r["test/agreement"] for r in rows(tmp_path / "go" / "results.csv")}
  assert got == {("t1", "0"): "50.0", ("t1", "1"): "51.0", ("t4", "0"): "50.0", ("t4", "1"): ""}
  md = (tmp_path / "go" / "results.md").read_text()
  assert "Diverged (a non-finite loss; no numbers, in no mean above): t4/seed1." in md
  # finished: a rerun does not train it again
  monkeypatch.setattr(experiment, "run", lambda *a, **k: pytest.fail("reran a finished trial"))
  sweep.run_sweep(c, s, tmp_path / "go", command=command(figure_file, tmp_path / "go"))
