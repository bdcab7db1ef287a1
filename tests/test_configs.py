"""Every config file in configs/, every variant: loads as --config=<file>:<variant> does, keeps the
base schema, and resolves into validated sweep trials without touching any data.

New config files are picked up by the glob; a file with variants other than "" and "mini"
lists them in VARIANTS.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from absl import flags
from ml_collections import ConfigDict, config_flags

from kd_jax import config as config_lib
from kd_jax import config_files
from kd_jax.sweeps import trials as trials_lib
from kd_jax.runner.identity import teacher_key
from kd_jax.models import get_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FILES = sorted(p for p in CONFIGS.glob("*.py") if not p.name.startswith("_"))
VARIANTS = {"mnist.py": ("", "tiny"),
            "fig6_init.py": ("", "mini", "mid"),
            "remedies.py": ("", "mid"),
            "testbed.py": ("", "selfdistill", "data", "init", "ensemble", "temperature"),
            "table2_imdb.py": ("", "mini", "paper_recipe", "2x70", "mini,paper_recipe,2x70")}
DEFAULT_VARIANTS = ("", "mini")
#: A file's default variant that is another variant by name (the same figure).
ALIASES = {"testbed.py:": "testbed.py:selfdistill"}
CPU_VARIANTS = ("mini", "tiny", "mid")  # must run on this machine: no tfds
MODEL_SECTIONS = ("teacher.model.", "distill.model.")  # options depend on the model


def cases():
  return [pytest.param(p, v, id=f"{p.stem}:{v or 'paper'}")
          for p in FILES for v in VARIANTS.get(p.name, DEFAULT_VARIANTS)]


def load_sweep(path: Path, variant: str) -> ConfigDict:
  return config_files.load_sweep(f"{path}:{variant}" if variant else path)


def load(path: Path, variant: str) -> ConfigDict:
  """Parses --config=<path>[:<variant>] with ml_collections' own flag, as kd_jax.sweeps.sweep does."""
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "config file", flag_values=values,
                                  lock_config=True)
  values(["test", f"--config={path}:{variant}" if variant else f"--config={path}"])
  return values.config


def flat_keys(c: ConfigDict, prefix: str = "") -> set[str]:
  out = set()
  for k, v in c.items():
    if isinstance(v, ConfigDict):
      out |= flat_keys(v, f"{prefix}{k}.")
    else:
      out.add(prefix + k)
  return out


@pytest.fixture
def no_data(monkeypatch):
  """Any attempt to read a dataset fails the test."""
  from kd_jax.runner import experiment
  from kd_jax.data import inputs, sources, splits

  def refuse(*args, **kwargs):
    raise AssertionError("resolving a config must not load data")

  monkeypatch.setattr(sources, "load_source", refuse)
  monkeypatch.setattr(splits, "make_splits", refuse)
  monkeypatch.setattr(inputs, "load_splits", refuse)
  monkeypatch.setattr(experiment, "run", refuse)


def test_there_are_figure_configs():
  names = {p.name for p in FILES}
  assert {"mnist.py", "cifar10.py", "cifar100.py", "fig3_augmentation.py",
          "table1_cka.py"} <= names


@pytest.mark.parametrize("path,variant", cases())
def test_config_resolves(path, variant, no_data):
  c = load(path, variant)
  assert isinstance(c, ConfigDict)
  assert c.name and c.name != "experiment", "set c.name (it names the plot and the results)"

  base = {k for k in flat_keys(config_lib.base_config()) if not k.startswith(MODEL_SECTIONS)}
  keys = {k for k in flat_keys(c) if not k.startswith(MODEL_SECTIONS)}
  assert keys == base, f"keys added: {sorted(keys - base)}, removed: {sorted(base - keys)}"
  for section in ("teacher", "distill"):
    assert isinstance(c[section].model, ConfigDict) and c[section].model.name

  s = load_sweep(path, variant)
  trials = trials_lib.resolve_arms(c, s)
  arms = [name for name, _ in trials_lib.arm_specs(s)]
  assert len(trials) == len(arms) * len(s.seeds)
  for t in trials:
    assert t.config.is_locked
    assert 1 <= t.config.distill.teacher_members <= t.config.teacher.ensemble_size
    for section in ("teacher", "distill"):  # model options are checked when the module is built
      m = t.config[section].model
      get_model(m.name, 10, **{k: v for k, v in m.items() if k != "name"})
    if t.config.distill.init.mode != "random":  # starts from teacher weights: same architecture
      assert t.config.distill.model.to_dict() == t.config.teacher.model.to_dict(), t.arm
    if s.x_key:
      assert t.x is not None
    if variant in CPU_VARIANTS:
      d = t.config.data
      assert d.source != "tfds", f"{t.arm}: a {variant} variant must run without tfds"
      assert d.ood.num == 0 or d.ood.source != "tfds", f"{t.arm}: OOD data from tfds"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_unknown_variant_raises(path):
  spec = importlib.util.spec_from_file_location(f"kd_jax_test_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  with pytest.raises(ValueError, match="no_such_variant"):
    module.get_config("no_such_variant")
  if hasattr(module, "get_sweep"):
    with pytest.raises(ValueError, match="no_such_variant"):
      module.get_sweep("no_such_variant")


def test_figure_names_are_unique():
  """A figure's plot is named after c.name: two figures (files with sweep arms) or two
  variants of one must not share a name."""
  seen = {}
  for p in FILES:
    for v in VARIANTS.get(p.name, DEFAULT_VARIANTS):
      c = load(p, v)
      if not load_sweep(p, v).arms:
        continue
      name = c.name
      pair = {f"{p.name}:{v}", seen.get(name)}
      if any({a, b} == pair for a, b in ALIASES.items()):
        continue  # one variant under two spellings: one figure
      assert name not in seen, f"{p.name}:{v} and {seen[name]} are both named {name!r}"
      seen[name] = f"{p.name}:{v}"


@pytest.mark.parametrize("variant,members", [("", 12), ("mini", 5)])
def test_figures_share_one_teacher(variant, members):
  """Figs 3, 5, 10 and 14 (and 9 in the mini) train one ensemble between them, in one store."""
  files = ["fig3_augmentation.py", "fig5_train_agreement.py", "fig10_ensemble_size.py",
           "fig14_alpha.py"] + (["fig9_temperature.py"] if variant else [])
  groups = {}
  for f in files:
    for t in trials_lib.resolve_arms(load(CONFIGS / f, variant), load_sweep(CONFIGS / f, variant)):
      groups.setdefault((teacher_key(t.config.data, t.config.teacher), t.config.teacher.store), set()).add(f)
      assert t.config.teacher.ensemble_size <= members
  assert len(groups) == 1, groups


@pytest.mark.parametrize("steps_per_call,backend,noted", [
    (1, "cpu", False), (4, "cpu", True), (4, "gpu", False), (100, "tpu", False)])
def test_several_steps_per_call_on_a_cpu_get_a_note_naming_the_faster_setting(
    steps_per_call, backend, noted):
  from kd_jax.runner.validate import steps_per_call_note
  note = steps_per_call_note(steps_per_call, backend)
  assert (note is not None) == noted
  if noted:
    assert f"run.steps_per_call={steps_per_call}" in note and "steps_per_call=1" in note
    assert "\n" not in note
