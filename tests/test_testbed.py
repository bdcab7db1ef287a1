"""The MNIST-1D testbed (configs/testbed.py): its source gives the generator's own arrays, a
missing package is a one-line error, the 1-D model and ops keep shapes, the configs resolve."""
from __future__ import annotations

import builtins
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from kd_jax import config_files, recipes
from kd_jax.config import data_config
from kd_jax.core.errors import ConfigError
from kd_jax.data import mnist1d_source, sources
from kd_jax.data.augment import make_augment
from kd_jax.models import get_model
from kd_jax.runner.identity import teacher_key
from kd_jax.sweeps import trials as trials_lib

HAS_MNIST1D = importlib.util.find_spec("mnist1d") is not None
needs_mnist1d = pytest.mark.skipif(not HAS_MNIST1D, reason="pip install mnist1d")
TESTBED = Path(__file__).resolve().parents[1] / "configs" / "testbed.py"


def small_data(**generator) -> ConfigDict:
  d = data_config()
  d.source = "mnist1d"
  d.mnist1d.num_samples = 400
  d.mnist1d.update(generator)
  return d


@needs_mnist1d
def test_source_gives_the_generators_arrays():
  from mnist1d.data import get_dataset_args, make_dataset
  data = small_data(iid_noise_scale=0.1, seed=7)
  ds = sources.load_source(data)
  args = get_dataset_args()
  args.num_samples, args.iid_noise_scale, args.seed = 400, 0.1, 7
  ref = make_dataset(args)
  assert ds.train_images.shape == (320, 1, 40, 1) and ds.train_images.dtype == np.uint8
  assert ds.test_images.shape == (80, 1, 40, 1)
  np.testing.assert_array_equal(ds.train_labels, ref["y"])
  np.testing.assert_array_equal(ds.test_labels, ref["y_test"])
  off, scale = ds.meta["offset"], ds.meta["scale"]
  for ours, theirs in ((ds.train_images, ref["x"]), (ds.test_images, ref["x_test"])):
    signal = off + scale * ours[:, 0, :, 0].astype(np.float64)
    assert np.abs(signal - theirs).max() <= scale / 2 + 1e-9  # quantized, nothing else


@needs_mnist1d
def test_generator_options_are_the_teachers_identity():
  t = ConfigDict(dict(model=dict(name="conv1d"), epochs=1))
  base = teacher_key(small_data(), t)
  assert teacher_key(small_data(), t) == base
  assert teacher_key(small_data(iid_noise_scale=0.1), t) != base
  assert teacher_key(small_data(seed=1), t) != base
  assert teacher_key(small_data(num_samples=800), t) != base


def test_missing_package_is_one_line(monkeypatch):
  real_import = builtins.__import__

  def no_mnist1d(name, *args, **kwargs):
    if name == "mnist1d" or name.startswith("mnist1d."):
      raise ImportError(f"No module named {name!r}")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_mnist1d)
  monkeypatch.setattr(mnist1d_source.importlib, "import_module",
                      lambda name: no_mnist1d(name))
  with pytest.raises(ConfigError, match="pip install mnist1d") as e:
    sources.load_source(small_data())
  assert "\n" not in str(e.value)


def test_bad_generator_option():
  with pytest.raises(ConfigError, match="data.mnist1d.train_split"):
    mnist1d_source.generator_options(small_data(train_split=1.5))


@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_conv1d_shapes(norm):
  model = get_model("conv1d", 10, width=8, norm=norm)
  x = jnp.zeros((3, 1, 40, 1), jnp.float32)
  variables = model.init(jax.random.PRNGKey(0), x)
  logits, feats = model.apply(variables, x, return_features=True)
  assert logits.shape == (3, 10) and logits.dtype == jnp.float32
  assert [f.shape for f in feats] == [(3, 1, 20, 8), (3, 1, 10, 8), (3, 1, 5, 8)]
  with pytest.raises(ConfigError, match="model.norm"):
    get_model("conv1d", 10, norm="group")


def test_shift_and_gauss():
  x = jnp.tile(jnp.linspace(0.0, 1.0, 40)[None, None, :, None], (16, 1, 1, 1))
  keys = jax.random.split(jax.random.PRNGKey(0), 16)
  shifted, real = make_augment("shift(3)")(x, keys, jax.random.PRNGKey(1))
  assert shifted.shape == x.shape and bool(real.all())
  step = float(x[0, 0, 1, 0] - x[0, 0, 0, 0])
  for row in np.asarray(shifted[:, 0, :, 0]):  # a ramp moved by k ∈ [-3, 3], edges repeated
    k = int(round((row[20] - np.asarray(x[0, 0, 20, 0])) / step))
    assert -3 <= k <= 3
    np.testing.assert_allclose(row, np.clip(np.asarray(x[0, 0, :, 0]) + k * step, 0, 1),
                               atol=1e-6)
  noisy, _ = make_augment("gauss(0.1)")(x, keys, jax.random.PRNGKey(1))
  assert 0.08 < float(jnp.std(noisy - x)) < 0.12


@pytest.mark.parametrize("variant", ["", "selfdistill", "data", "init", "ensemble",
                                     "temperature", "remedies_tune", "remedies",
                                     "remedies_planes"])
def test_testbed_configs_resolve(variant):
  spec = f"{TESTBED}:{variant}" if variant else str(TESTBED)
  c = config_files.get_config(config_files.load_module(TESTBED), variant)
  s = config_files.load_sweep(spec)
  trials = trials_lib.resolve_arms(c, s)
  assert len(s.seeds) == {"remedies_tune": 2, "remedies_planes": 1}.get(variant, 10)
  assert {t.config.data.source for t in trials} == {"mnist1d"}
  # every arm of every variant shares one stored teacher ensemble
  keys = {teacher_key(t.config.data, t.config.teacher, missing_ok=True) for t in trials}
  assert len(keys) == 1


def _testbed_module():
  return config_files.load_module(TESTBED)


@pytest.mark.parametrize("spec,epochs,val", [("testbed.py:remedies_tune", 1_000, 400),
                                              ("remedies.py:tune", 300, 5_000)])
def test_every_remedy_spends_the_baselines_gradient_evaluations(spec, epochs, val):
  """Per distillation example: epochs × gradients a step (2 with SAM) + the polish's iterations
  at their charged cost = the baseline's epochs, for every arm of the tuning sweeps (the CPU
  testbed's and the paper-scale one); both tune on held-out examples, never on test."""
  path = TESTBED.parent / spec.split(":")[0]
  c = config_files.get_config(config_files.load_module(path), spec.split(":")[1])
  trials = trials_lib.resolve_arms(c, config_files.load_sweep(f"{path}:{spec.split(':')[1]}"))
  extended = len(getattr(config_files.load_module(path), "EXTEND_BELOW", ()))
  assert len({t.arm for t in trials}) == 3 * 13 + extended
  for t in trials:
    d = t.config.distill
    spent = d.epochs * (2 if d.sam_rho else 1) + d.polish.epochs * recipes.POLISH_EPOCH_COST
    assert spent == epochs, t.arm
    assert d.sam_rho in (0.0, recipes.SAM_RHO)
    assert t.config.data.distill_val == val
    assert "test" not in d.evals  # tuning never reads the test split


def test_tuning_grid_is_each_arms_rate_times_the_factors():
  tb = _testbed_module()
  s = config_files.load_sweep(f"{TESTBED}:remedies_tune")
  c = config_files.get_config(tb, "remedies_tune")
  by_arm = {t.arm: t.config.distill.optim.lr for t in trials_lib.resolve_arms(c, s)}
  for name, _, lr in tb.remedy_arms():
    got = sorted(v for k, v in by_arm.items() if k.rsplit("_lr", 1)[0] == name)
    want = [lr / 9] * (name in tb.EXTEND_BELOW) + [lr / 3, lr, 3 * lr]
    np.testing.assert_allclose(got, want, rtol=1e-5)  # rates kept to 8 decimals
  assert set(tb.EXTEND_BELOW) <= {name for name, _, _ in tb.remedy_arms()}


@pytest.mark.parametrize("file,tune,run,folder", [
    ("testbed.py", "remedies_tune", "remedies", "testbed_remedies_tune"),
    ("remedies.py", "tune", "v2", "remedies_tune")])
def test_tuned_rates_are_the_committed_tuning_sweeps_best(file, tune, run, folder):
  """TUNED_LR holds, per remedy, the rate with the best mean val/agreement in the committed
  tuning folder; with no folder committed it must be empty (and the tuned variant refuses to
  run)."""
  import csv
  path = TESTBED.parent / file
  module = config_files.load_module(path)
  table = TESTBED.parents[1] / "experiments" / "results" / folder / "results.csv"
  if not table.is_file():
    assert module.TUNED_LR == {}
    with pytest.raises(ConfigError, match=f"run configs/{file}:{tune}, commit"):
      config_files.load_sweep(f"{path}:{run}")
    return
  rows = list(csv.DictReader(table.open()))
  best = {}
  for arm in {r["arm"].rpartition("_lr")[0] for r in rows}:
    scores = {}
    for r in rows:
      name, _, lr = r["arm"].rpartition("_lr")
      if name == arm and r["val/agreement"]:
        scores.setdefault(float(lr), []).append(float(r["val/agreement"]))
    best[arm] = max(scores, key=lambda lr: np.mean(scores[lr]))
  assert {k: pytest.approx(v, rel=1e-2) for k, v in best.items()} == module.TUNED_LR


def test_remedies_planes_are_the_remedies_seed_0_with_the_plane():
  """The plane variant runs exactly the remedies' trials of its seeds (same arms, same
  overrides), with the plane analysis on every distillation signal; refused like the remedies
  until the tuned rates exist."""
  module = _testbed_module()
  if not module.TUNED_LR:
    with pytest.raises(ConfigError, match="configs/testbed.py:remedies_planes needs the tuned"):
      config_files.load_sweep(f"{TESTBED}:remedies_planes")
    return
  trials = {}
  for v in ("remedies", "remedies_planes"):
    c = config_files.get_config(module, v)
    trials[v] = {(t.arm, t.seed): t.config for t in
                 trials_lib.resolve_arms(c, config_files.load_sweep(f"{TESTBED}:{v}"))}
  planes = trials["remedies_planes"]
  assert {seed for _, seed in planes} == set(module.PLANE_SEEDS)
  assert {arm for arm, _ in planes} == {arm for arm, _ in trials["remedies"]}
  for key, c in planes.items():
    ref = trials["remedies"][key]
    assert c.analysis.plane and c.analysis.plane_examples == module.TEACHER_SIGNALS
    assert c.distill.to_dict() | {"eval_every": 0} == ref.distill.to_dict() | {"eval_every": 0}
    assert c.data.to_dict() == ref.data.to_dict() and c.teacher.to_dict() == ref.teacher.to_dict()


def test_plateau_drift_is_the_fitted_gain_and_ignores_alternating_noise(tmp_path, capsys):
  """experiments/testbed_plateau.py: on a curve a + b·epoch plus ±noise alternating every
  evaluation, the range over the last 20% includes the noise while the drift is the line's
  gain over that window (closed form b · window, the alternation fitting to ~0 slope)."""
  import json
  spec = importlib.util.spec_from_file_location(
      "testbed_plateau", TESTBED.parents[1] / "experiments" / "testbed_plateau.py")
  plateau = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(plateau)
  slopes = {0: 0.001, 1: 0.003}
  for seed, b in slopes.items():
    trial = tmp_path / "sweep" / "arm" / f"seed{seed}"
    trial.mkdir(parents=True)
    lines, tail = [], []
    for i, epoch in enumerate(range(10, 1001, 10)):
      noise = 0.5 * (-1) ** i
      test = 80.0 + b * epoch + noise
      if epoch >= 800:
        tail.append(test)
      lines.append(json.dumps({"phase": "distill", "epoch": epoch,
                               "test": {"agreement": test, "student_acc": 70.0,
                                        "teacher_acc": 70.0},
                               "distill": {"agreement": 90.0 + b * epoch, "student_acc": 70.0}}))
    (trial / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (trial / "results.json").write_text("{}")
    s = plateau.trial_summary(trial / "metrics.jsonl")
    window = 1000 - 800                       # evaluations at epochs 800 … 1000
    # 21 alternating ±0.5 points about a line: the fitted slope absorbs at most their
    # correlation with the epoch, which is below 0.05 points over the window here
    assert abs(s["test_drift_last20%"] - b * window) < 0.05
    assert s["distill_drift_last20%"] == pytest.approx(b * window, abs=1e-9)
    assert s["test_agreement_range_last20%"] == pytest.approx(max(tail) - min(tail))
    assert s["test_agreement_range_last20%"] > 1.0   # the noise is in the range, not the drift
  plateau.main([str(tmp_path / "sweep")])
  out = capsys.readouterr().out
  row = next(line for line in out.splitlines() if line.startswith("| sweep/arm | 2 | +"))
  # two seeds' drifts 0.2 and 0.6 (distill: exact): mean 0.4, CI crosses 0.5 → not a plateau
  assert "+0.40 [" in row.split("|")[4] and row.rstrip().endswith("| no |")
