"""The sweep runner: arms × seeds on real (tiny) training, shared teachers, resumable outputs.

Expectations are computed here from the files each trial wrote (results.json, the teacher
store), from numpy over fabricated per-seed numbers, or from counts of experiment.run calls.
"""
from __future__ import annotations

import csv
import gzip
import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from kd_jax.runner import experiment
from kd_jax import config_files
from kd_jax.sweeps import sweep
from kd_jax.sweeps import trials as trials_lib
from kd_jax.config import lock
from kd_jax.core.errors import ConfigError
from test_cli import CommandLine

# tests/tiny.py's settings; two arms that share one 2-member teacher (m=1 and m=2).
FIGURE = '''
from kd_jax.config import sweep_config
from tiny import tiny_config


def get_sweep(arg: str = ""):
  s = sweep_config()
  s.arms = (("m1_t1", {"distill.temperature": 1.0}),
            ("m2_t4", {"teacher.ensemble_size": 2, "distill.temperature": 4.0}))
  s.paper = (("m2_t4", {"test/agreement": "≈90", "test/student_acc": 60}),)
  return s


def get_config(arg: str = ""):
  c = tiny_config(store="", devices=0)
  c.unlock()
  c.name = "tiny_figure"
  return c
'''
ARMS = ("m1_t1", "m2_t4")
MEMBERS = {"m1_t1": 1, "m2_t4": 2}
SPLIT_METRICS = ("agreement", "student_acc", "teacher_acc", "kl", "student_ece", "teacher_ece",
                 "student_nll", "teacher_nll")


@pytest.fixture(scope="module")
def figure_file(tmp_path_factory) -> Path:
  path = tmp_path_factory.mktemp("configs") / "tiny_figure.py"
  path.write_text(FIGURE)
  return path


def load(figure_file: Path, **changes):
  c = runpy.run_path(str(figure_file))["get_config"]()
  for key, value in changes.items():
    section, leaf = key.split("__")
    c[section][leaf] = value
  return lock(c)


def load_sweep(figure_file: Path):
  return config_files.load_sweep(figure_file)


def fig(figure_file: Path, **changes):
  """(trial config, sweep) of the figure file; ``section__key=value`` changes the config."""
  return load(figure_file, **changes), load_sweep(figure_file)


def with_arms(figure, arms, **sweep_values):
  """The figure with other arms (its paper values name the old ones, so they go too)."""
  c, s = figure
  s.arms = arms
  s.paper = ()
  for k, v in sweep_values.items():
    s[k] = v
  return c, s


def counting(monkeypatch, fail: bool = False) -> list:
  calls = []
  real = experiment.run

  def run(config, workdir, hook=None):
    calls.append((config.seed, Path(workdir)))
    if fail:
      raise AssertionError(f"experiment.run called for {workdir} although it had finished")
    return real(config, workdir, hook=hook)

  monkeypatch.setattr(experiment, "run", run)
  return calls


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
  with path.open() as f:
    reader = csv.DictReader(f)
    return list(reader.fieldnames), list(reader)


def stored_teachers(store: Path) -> list[Path]:
  return sorted(p for p in store.iterdir() if (p / "teacher.json").exists())


@pytest.fixture(scope="module")
def straight(figure_file, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  with pytest.MonkeyPatch.context() as mp:
    calls = counting(mp)
    sweep.run_sweep(*fig(figure_file), workdir, command="python -m kd_jax.sweep (test)")
  return workdir, calls


def test_every_arm_runs_and_the_teacher_trains_once(straight):
  workdir, calls = straight
  assert [w.relative_to(workdir).as_posix() for _, w in calls] == [f"{a}/seed0" for a in ARMS]
  (entry,) = stored_teachers(workdir / "teachers")
  assert entry.name.endswith(f"-m{max(MEMBERS.values())}")
  results = {a: json.loads((workdir / a / "seed0" / "results.json").read_text()) for a in ARMS}
  assert {r["teacher"]["entry"] for r in results.values()} == {str(entry)}

  cols, rows = read_csv(workdir / "results.csv")
  expected = (["arm", "seed"] + [f"{s}/{m}" for s in ("test", "distill") for m in SPLIT_METRICS]
              + ["running/agreement", "running/kl", "running/loss"]
              + ["run/wall_time_s", "run/teacher_members_used"]
              + ["commit", "machine", "finished"])  # where each trial ran (kd_jax.sweeps.origin)
  assert sorted(cols) == sorted(expected) and cols[:2] == ["arm", "seed"]
  assert [r["arm"] for r in rows] == list(ARMS)
  for r in rows:
    res = results[r["arm"]]["splits"]
    assert int(r["run/teacher_members_used"]) == MEMBERS[r["arm"]]
    for split in ("test", "distill"):
      for m in SPLIT_METRICS:
        # the CSV keeps 6 significant digits (sweep_report.CSV_DIGITS)
        got = float(r[f"{split}/{m}"])
        assert got == pytest.approx(res[split][m], rel=1e-5), (r["arm"], split, m)
    assert float(r["running/agreement"]) == pytest.approx(res["running"]["agreement"], rel=1e-5)

  md = (workdir / "results.md").read_text()
  table = [l for l in md.splitlines() if l.startswith("| ") and not l.startswith("| arm ")]
  assert [l.split(" | ")[0][2:] for l in table] == list(ARMS)
  agree = f"{results['m1_t1']['splits']['test']['agreement']:.2f}"
  assert f"| m1_t1 | 1 | {agree} |" in md  # one seed: a mean and no ± std
  assert table[1].endswith("test student acc % 60 |") and "≈90" in table[1]
  assert table[0].endswith("| — |")  # no paper value for this arm
  png = workdir / "tiny_figure.png"
  assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rerun_trains_nothing(straight, figure_file, monkeypatch):
  workdir, _ = straight
  files = sorted(workdir.glob("*/seed*/results.json"))
  before = [f.stat().st_mtime_ns for f in files]
  _, rows_before = read_csv(workdir / "results.csv")
  counting(monkeypatch, fail=True)
  sweep.run_sweep(*fig(figure_file), workdir)
  assert [f.stat().st_mtime_ns for f in files] == before and len(files) == len(ARMS)
  assert read_csv(workdir / "results.csv")[1] == rows_before


class _Kill(Exception):
  pass


def test_killed_sweep_finishes_on_rerun_with_the_same_numbers(straight, figure_file, tmp_path,
                                                               monkeypatch):
  reference, _ = straight
  store = reference / "teachers"  # an explicit store is honoured: the teacher is not retrained
  config = fig(figure_file, teacher__store=str(store))
  seen = []

  def kill_in_second_trial(phase, epoch):
    seen.append((phase, epoch))
    if seen.count(("distill", 1)) == 2:
      raise _Kill()

  with pytest.raises(_Kill):
    sweep.run_sweep(*config, tmp_path, hook=kill_in_second_trial)
  assert [r["arm"] for r in read_csv(tmp_path / "results.csv")[1]] == ["m1_t1"]  # partial output
  half_done = tmp_path / "m2_t4" / "seed0"
  assert (half_done / "checkpoints").is_dir() and not (half_done / "results.json").exists()

  calls = counting(monkeypatch)
  sweep.run_sweep(*config, tmp_path)
  assert [w.relative_to(tmp_path).as_posix() for _, w in calls] == ["m2_t4/seed0"]
  assert len(stored_teachers(store)) == 1 and not (tmp_path / "teachers").exists()
  cols, rows = read_csv(tmp_path / "results.csv")
  ref_cols, ref_rows = read_csv(reference / "results.csv")
  assert cols == ref_cols
  drop = lambda r: {k: v for k, v in r.items() if k not in ("run/wall_time_s", "finished")}
  assert [drop(r) for r in rows] == [drop(r) for r in ref_rows]


# ------------------------------------------------------------ without training (fast)


def fake_run(monkeypatch, score, extra=None, legacy_names=False) -> list:
  """experiment.run stand-in: writes config.json and results.json with numbers from ``score``."""
  calls = []

  def run(config, workdir, hook=None):
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    calls.append(workdir)
    (workdir / "config.json").write_text(json.dumps(config.to_dict(), default=str))
    split = lambda base: {m: base + i for i, m in enumerate(SPLIT_METRICS)}
    s = score(workdir.parent.name, config.seed)
    names = legacy_names and ("train", "train_aug") or ("distill", "distill_aug")
    splits = {"test": split(s), names[0]: split(s + 100), **(extra or {})}
    if config.distill.augment:
      splits[names[1]] = split(s + 200)
    res = {"splits": splits, "wall_time_s": 1.0,
           "teacher": {"members_used": int(config.distill.teacher_members)}}
    (workdir / "results.json").write_text(json.dumps(res))
    return res

  monkeypatch.setattr(experiment, "run", run)
  return calls


def lam_figure(figure_file):
  arms = tuple((f"lam{lam}", {"distill.init.mode": "interpolate", "distill.init.lam": lam})
               for lam in (0.0, 0.5, 1.0))
  c, s = with_arms(fig(figure_file), arms, seeds=(0, 1, 2), x_key="distill.init.lam")
  s.paper = (("lam0.5", {"distill/agreement": 99.65}),)
  return c, s


def ci_cell(values) -> str:
  """mean ± the 95% CI half-width, computed here: numpy's sample std, scipy's t quantile."""
  v = np.asarray(values, dtype=float)
  half = scipy.stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
  return f"{v.mean():.2f} ± {half:.2f}"


def table_row(md: str, arm: str) -> str:
  return next(l for l in md.splitlines() if l.startswith(f"| {arm} |"))


def test_table_is_mean_and_95_ci_over_seeds(figure_file, tmp_path, monkeypatch):
  score = lambda arm, seed: 10.0 * len(arm) + seed ** 2  # seeds 0, 1, 4 apart
  calls = fake_run(monkeypatch, score)
  sweep.run_sweep(*lam_figure(figure_file), tmp_path)
  assert len(calls) == 3 * 3
  cols, rows = read_csv(tmp_path / "results.csv")
  assert len(rows) == 9 and "x" in cols and not any(c.startswith("distill_aug/") for c in cols)
  assert [float(r["x"]) for r in rows] == [lam for lam in (0.0, 0.5, 1.0) for _ in range(3)]
  md = (tmp_path / "results.md").read_text()
  assert "95% confidence interval" in md and "sample std" not in md
  for arm in ("lam0.0", "lam0.5", "lam1.0"):
    agreement = [score(arm, s) + SPLIT_METRICS.index("agreement") for s in (0, 1, 2)]
    assert f"| 3 | {ci_cell(agreement)} |" in table_row(md, arm)
  assert (tmp_path / "tiny_figure.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def welch_cell(a, b) -> str:
  """Δ [low, high] of the Welch 95% CI, from scipy's ttest_ind (not the code under test)."""
  ci = scipy.stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
  sign = lambda v: f"{'-' if v < 0 else '+'}{abs(v):.2f}"
  cell = f"{sign(np.mean(a) - np.mean(b))} [{sign(ci.low)}, {sign(ci.high)}]"
  return cell + (" (n.s.)" if ci.low <= 0 <= ci.high else "")


def test_differences_from_the_reference_arm_and_two_groups(figure_file, tmp_path, monkeypatch):
  # lam1.0 the reference; lam0.5 splits 2 seeds near 30 / 1 near 80 (Fig 6b's λ = 0.5);
  # lam0.0 sits 0.5 below the reference, inside its seed noise
  agree = {"lam0.0": [20.0, 21.5, 23.0], "lam0.5": [30.0, 80.0, 31.0],
           "lam1.0": [20.5, 22.0, 23.5]}
  offset = SPLIT_METRICS.index("agreement")
  fake_run(monkeypatch, lambda arm, seed: agree[arm][seed] - offset)
  c, s = lam_figure(figure_file)
  s.reference_arm = "lam1.0"
  sweep.run_sweep(c, s, tmp_path)
  md = (tmp_path / "results.md").read_text()
  assert "Difference from the reference arm `lam1.0`" in md and "(n.s.) = the CI contains 0" in md
  rows = {l.split(" | ")[0][2:]: l for l in md.split("Difference from")[1].splitlines()
          if l.startswith("| lam")}
  assert list(rows) == ["lam0.0", "lam0.5"]  # every arm but the reference
  for arm in rows:
    assert f"| 3 | {welch_cell(agree[arm], agree['lam1.0'])} |" in rows[arm], rows[arm]
  assert "(n.s.)" in rows["lam0.0"]
  assert "- lam0.5, test agreement %: 2/3 seeds near 30.50, 1/3 near 80.00" in md
  assert not any(l.startswith(("- lam0.0", "- lam1.0")) for l in md.splitlines())


def test_one_seed_shows_values_and_no_differences(figure_file, tmp_path, monkeypatch):
  fake_run(monkeypatch, lambda arm, seed: 50.0 + len(arm))
  c, s = with_arms(fig(figure_file), (("a", {}), ("bb", {})))
  sweep.run_sweep(c, s, tmp_path)
  md = (tmp_path / "results.md").read_text()
  assert f"| 1 | {50.0 + 1 + SPLIT_METRICS.index('agreement'):.2f} |" in table_row(md, "a")
  assert "Differences from the reference arm `a`: not shown" in md
  assert not any("±" in l for l in md.splitlines() if l.startswith("| "))


def test_table_metrics_keeps_results_md_to_the_figure_metrics(figure_file, tmp_path,
                                                              monkeypatch):
  fake_run(monkeypatch, lambda arm, seed: 50.0 + len(arm))
  c, s = with_arms(fig(figure_file), (("a", {}), ("bb", {})), metrics=("test/teacher_acc",))
  s.unlock()
  s.table = "metrics"
  sweep.run_sweep(c, s, tmp_path)
  md = (tmp_path / "results.md").read_text()
  head = next(l for l in md.splitlines() if l.startswith("| arm |"))
  assert head == "| arm | seeds | test teacher acc % | paper |"
  cols, _ = read_csv(tmp_path / "results.csv")
  assert "test/agreement" in cols and "test/teacher_acc" in cols   # the CSV keeps them all


def test_reached_counts_the_seeds_at_a_level_with_an_exact_ci(figure_file, tmp_path,
                                                              monkeypatch):
  fake_run(monkeypatch, lambda arm, seed: 50.0 + 10 * seed if arm == "a" else 40.0)
  c, s = with_arms(fig(figure_file), (("a", {}), ("bb", {})), seeds=(0, 1, 2))
  level = 60.0 + SPLIT_METRICS.index("agreement")      # seeds 1 and 2 of arm a reach it
  s.unlock()
  s.reached = (("test/agreement", level),)
  sweep.run_sweep(c, s, tmp_path)
  md = (tmp_path / "results.md").read_text()
  assert f"| arm | test agreement % ≥ {level:g} |" in md
  for arm, k in (("a", 2), ("bb", 0)):
    ci = scipy.stats.binomtest(k, 3).proportion_ci(confidence_level=0.95, method="exact")
    assert f"| {arm} | {k}/3 [{ci.low:.2f}, {ci.high:.2f}] |" in md


@pytest.mark.parametrize("legacy", [False, True])
def test_augmented_arm_adds_distill_aug_columns(figure_file, tmp_path, monkeypatch, capsys,
                                                legacy):
  """Trials whose results.json still says train/train_aug (written before the split had one
  name) land in the same columns, with a note."""
  fake_run(monkeypatch, lambda arm, seed: 1.0, legacy_names=legacy)
  c = with_arms(fig(figure_file), (("plain", {}), ("flip", {"distill.augment": "hflip"})))
  sweep.run_sweep(*c, tmp_path)
  cols, rows = read_csv(tmp_path / "results.csv")
  assert not any(c.startswith("train") for c in cols)
  aug = [c for c in cols if c.startswith("distill_aug/")]
  assert sorted(aug) == sorted(f"distill_aug/{m}" for m in SPLIT_METRICS)
  assert [r["distill_aug/agreement"] for r in rows] == ["", str(float(201 + SPLIT_METRICS.index("agreement")))]
  assert [r["distill/agreement"] for r in rows] == [str(float(101 + SPLIT_METRICS.index("agreement")))] * 2
  notes = [l for l in capsys.readouterr().err.splitlines() if "old name" in l]
  assert bool(notes) == legacy


def test_analysis_numbers_become_columns(figure_file, tmp_path, monkeypatch):
  cka = {"stage1": 0.939, "stage2": 0.925, "stage3": 0.885}
  fake_run(monkeypatch, lambda arm, seed: 1.0, extra={"cka": cka})
  sweep.run_sweep(*with_arms(fig(figure_file), (("a", {}),)), tmp_path)
  cols, (row,) = read_csv(tmp_path / "results.csv")
  assert {f"cka/{k}": str(v) for k, v in cka.items()} == {c: row[c] for c in cols
                                                         if c.startswith("cka/")}
  md = (tmp_path / "results.md").read_text()
  assert "CKA stage 1" in md and "| 0.939 | 0.925 | 0.885 |" in md


def test_changed_config_is_refused_in_a_used_workdir(figure_file, tmp_path, monkeypatch):
  fake_run(monkeypatch, lambda arm, seed: 1.0)
  sweep.run_sweep(*fig(figure_file), tmp_path)
  with pytest.raises(ConfigError, match="distill.epochs=2") as err:
    sweep.run_sweep(*fig(figure_file, distill__epochs=3), tmp_path)
  assert "\n" not in str(err.value)


def test_arms_resolve_to_shared_teacher_groups(figure_file, tmp_path):
  arms = (("m1", {}), ("m3", {"teacher.ensemble_size": 3}),
          ("m5of5", {"teacher.ensemble_size": 5, "distill.teacher_members": 5}),
          ("longer", {"teacher.epochs": 3}))
  c, s = with_arms(fig(figure_file), arms, seeds=(0, 1), x_key="distill.teacher_members")
  trials = trials_lib.resolve_arms(c, s, tmp_path)
  # Seed-major: a sweep stopped part-way has all arms at its first seed.
  assert [t.path for t in trials] == [f"{a}/seed{s}" for s in (0, 1)
                                      for a in ("m1", "m3", "m5of5", "longer")]
  assert [t.seed for t in trials] == [0] * 4 + [1] * 4
  groups = trials_lib.teacher_groups(trials)
  assert len(groups) == 2
  sizes = [(t.config.teacher.ensemble_size, t.config.distill.teacher_members) for t in trials]
  assert sizes == [(5, 1), (5, 3), (5, 5), (1, 1)] * 2
  assert [t.x for t in trials[:4]] == [1.0, 3.0, 5.0, 1.0]
  assert {t.config.teacher.store for t in trials} == {str((tmp_path / "teachers").absolute())}
  with pytest.raises(AttributeError, match="not_a_key"):
    trials[0].config.distill.not_a_key = 1  # resolved configs stay locked


def test_seed_also_gives_each_seed_its_own_teacher(figure_file, tmp_path):
  # A study of the teachers (their epochs): the trial's seed is the teacher's seed too, so each
  # seed is a teacher of its own, and arms of one recipe still share it per seed.
  arms = (("a", {}), ("b", {"distill.temperature": 2.0}), ("long", {"teacher.epochs": 3}))
  c, s = with_arms(fig(figure_file), arms, seeds=(0, 1, 2))
  s.unlock()
  s.seed_also = ("teacher.seed",)
  trials = trials_lib.resolve_arms(c, s, tmp_path)
  assert [(t.arm, t.seed, t.config.seed, t.config.teacher.seed) for t in trials] == [
      (a, k, k, k) for k in (0, 1, 2) for a in ("a", "b", "long")]
  by = {(t.arm, t.seed): t.group for t in trials}
  assert len(set(by.values())) == 6                    # 2 recipes × 3 teacher seeds
  assert all(by[("a", k)] == by[("b", k)] != by[("long", k)] for k in (0, 1, 2))
  s.seed_also = ()                                     # without it: one teacher per recipe
  assert len({t.group for t in trials_lib.resolve_arms(c, s, tmp_path)}) == 2


@pytest.mark.parametrize("arms,other,needle", [
    ((("good", {}), ("bad_arm", {"distill.temprature": 2.0})), {}, "'distill.temprature'"),
    ((("bad_arm", {"distill.epochs": 2.5}),), {}, "distill.epochs=2.5"),
    ((("bad_arm", {"distill.temperature": 0.0}),), {}, "distill.temperature"),
    ((("bad_arm", {"seed": 3}),), {}, "'seed'"),
    ((("a", {}), ("a", {})), {}, "appears twice"),
    ((("a/b", {}),), {}, "'a/b'"),
    ((("a", {}),), {"metrics": ("test/agree",)}, "test/agree"),
    ((("a", {}),), {"metrics": ("test_agreement",)}, "test_agreement"),
    ((("a", {}),), {"paper": (("b", {"test/agreement": 80}),)}, "arm 'b'"),
    ((("a", {}),), {"x_key": "distill.augment"}, "numeric"),
    ((("a", {}),), {"reference_arm": "b"}, "sweep.reference_arm='b'"),
    ((("a", {}),), {"gap": (("test/kl", 100.0),)}, "sweep.gap entry ('test/kl', 100.0)"),
    ((("a", {}),), {"gap": (("test/agreement", "all"),)}, "sweep.gap entry"),
    ((("bad_arm", {"distill.evals": ("test",)}),), {"metrics": ("running/agreement",)},
     "add 'running' to distill.evals"),
    ((("a", {}),), {"seed_also": ("teacher.sed",)}, "'teacher.sed'"),
    ((("a", {}),), {"table": "some"}, "sweep.table='some'"),
    ((("a", {}),), {"reached": (("test/kl", 1.0),)}, "sweep.reached entry ('test/kl', 1.0)"),
    ((("a", {}),), {"seed_also": ("seed",)}, "sweep.seed_also lists 'seed'"),
    ((("bad_arm", {"teacher.seed": 3}),), {"seed_also": ("teacher.seed",)}, "drop one of them"),
])
def test_bad_sweep_is_one_clear_error(figure_file, arms, other, needle):
  c = with_arms(fig(figure_file), arms, **other)
  with pytest.raises(ConfigError) as err:
    trials_lib.resolve_arms(*c)
  msg = str(err.value)
  assert needle in msg and "\n" not in msg
  if "bad_arm" in str(arms):
    assert "'bad_arm'" in msg


def test_no_arms_is_one_default_arm(figure_file):
  c = with_arms(fig(figure_file), ())
  (trial,) = trials_lib.resolve_arms(*c)
  assert (trial.arm, trial.path) == ("default", "default/seed0")
  assert trial.config.distill.temperature == 4.0  # the base config, unchanged


def test_command_line_dry_run_and_errors(figure_file, tmp_path):
  """`python -m kd_jax.sweep`, each run in a process forked from test_cli's command-line
  server (what it prints is what a fresh process prints: test_cli checks that)."""
  cli = CommandLine()
  try:
    args = [f"--config={figure_file}", f"--workdir={tmp_path}"]
    here = (str(Path(__file__).parent),)  # the figure imports tiny
    out = cli.run(*args, "--dry_run", module="kd_jax.sweep", pythonpath=here)
    assert out.returncode == 0, out.stderr
    assert "m1_t1/seed0" in out.stdout and "m2_t4/seed0" in out.stdout
    assert sum("× lenet5" in l for l in out.stdout.splitlines()) == 1  # one teacher group
    assert not (tmp_path / "results.csv").exists()  # nothing ran
    bad = cli.run(*args, "--only=m3", module="kd_jax.sweep", pythonpath=here)
  finally:
    cli.close()
  assert bad.returncode == 2
  assert bad.stderr.strip().count("\n") == 0 and "'m3'" in bad.stderr


def _trial_files(folder: Path, splits: dict, records: list, packed: bool) -> None:
  folder.mkdir(parents=True)
  (folder / "results.json").write_text(json.dumps(
      {"splits": splits, "teacher": {"members_used": 1}, "wall_time_s": 1.0}))
  text = "".join(json.dumps(r) + "\n" for r in records)
  if packed:
    with gzip.open(folder / "metrics.jsonl.gz", "wt") as f:
      f.write(text)
  else:
    (folder / "metrics.jsonl").write_text(text)


@pytest.mark.parametrize("packed", [False, True])
def test_running_split_of_a_trial_finished_before_it_was_asked_for(tmp_path, packed):
  """A trial run with distill.evals lacking 'running' stays finished when the config adds it
  (evaluations are not identity): its table reads the final epoch's record of metrics.jsonl —
  the polish phase's when it has one — which is what the evaluator would have copied."""
  from types import SimpleNamespace
  from ml_collections import ConfigDict
  from kd_jax.sweeps import report
  test = {"agreement": 90.0}
  records = [{"phase": "teacher", "epoch": 1, "running": {"agreement": 11.0}},
             {"phase": "distill", "epoch": 1, "running": {"agreement": 50.0, "kl": 0.5}},
             {"phase": "distill", "epoch": 2, "running": {"agreement": 60.0, "kl": 0.4},
              "test": test}]
  polished = records + [{"phase": "polish", "epoch": 1, "running": {"agreement": 70.0}}]
  _trial_files(tmp_path / "plain/seed0", {"test": test}, records, packed)
  _trial_files(tmp_path / "polish/seed0", {"test": test}, polished, packed)
  _trial_files(tmp_path / "has_it/seed0", {"test": test, "running": {"agreement": 1.0}},
               records, packed)
  _trial_files(tmp_path / "not_asked/seed0", {"test": test}, records, packed)

  def trial(arm, evals):
    return SimpleNamespace(arm=arm, seed=0, x=None, series="", path=f"{arm}/seed0",
                           config=ConfigDict({"distill": {"evals": evals}}))
  asked = ("test", "distill", "running")
  rows = report.collect_rows([trial("plain", asked), trial("polish", asked),
                              trial("has_it", asked), trial("not_asked", ("test",))], tmp_path)
  got = {r["arm"]: (r.get("running/agreement"), r.get("running/kl")) for r in rows}
  assert got == {"plain": (60.0, 0.4), "polish": (70.0, None), "has_it": (1.0, None),
                 "not_asked": (None, None)}
  assert all(r["test/agreement"] == 90.0 for r in rows)


def test_diverged_flag_overrides_the_figures_choice(figure_file, tmp_path, monkeypatch):
  """`--diverged=record` makes a figure that stops at a non-finite trial record it instead
  (a learning-rate grid where divergence is an outcome); without it the figure decides."""
  from absl import flags
  from kd_jax import sweep as command
  command._define_flags()
  got = []
  monkeypatch.setattr(command, "run_sweep",
                      lambda config, sweep, workdir, **kw: got.append(sweep.diverged))
  try:
    for extra in ([], ["--diverged=record"], ["--diverged=stop"]):
      flags.FLAGS.unparse_flags()
      flags.FLAGS(["kd_jax.sweep", f"--config={figure_file}", f"--workdir={tmp_path}", *extra])
      command.main(["kd_jax.sweep"])
  finally:
    flags.FLAGS.unparse_flags()
  assert got == ["stop", "record", "stop"]
