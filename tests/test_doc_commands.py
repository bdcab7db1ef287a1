"""Every config a README or doc names (``configs/<file>.py[:variant]``) loads, and every figure's
sweep resolves into trials, without training or reading data: a renamed variant, a moved module
or a key dropped from the schema breaks a documented command here first. The commands that are
shown failing on purpose (the README's error examples) are run by tests/test_cli.py."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from kd_jax import config_files
from kd_jax.sweeps.trials import resolve_arms

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", REPO / "experiments" / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SPEC = re.compile(r"configs/([a-z0-9_]+)\.py(?::([a-z_0-9]+))?")


def _specs() -> list[str]:
  found = set()
  for doc in DOCS:
    for name, variant in SPEC.findall(doc.read_text()):
      if (REPO / "configs" / f"{name}.py").exists():  # mnist_big.py: the missing-file example
        found.add(f"configs/{name}.py" + (f":{variant}" if variant else ""))
  return sorted(found)


def test_the_docs_name_configs():
  assert len(_specs()) >= 15  # the extraction itself works


@pytest.mark.parametrize("spec", _specs())
def test_documented_config_loads_and_its_trials_resolve(spec, monkeypatch):
  monkeypatch.chdir(REPO)
  config = config_files.load(REPO / spec)
  sweep = config_files.load_sweep(REPO / spec)
  trials = resolve_arms(config, sweep, None)
  assert trials and all(t.config.name == config.name for t in trials)
