"""The house rule: kd_jax's modules import only downward (DESIGN: subpackages by job), and no
import cycle exists. The graph is read with ast from the source (no kd_jax import), so the test
sees lazy imports inside functions too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kd_jax"

#: The layers, lowest first: a module may import from its own layer and the layers before it.
LAYERS = (
    "kd_jax.core",
    "kd_jax.config",
    "kd_jax.recipes",
    "kd_jax.config_files",
    "kd_jax.kd",
    "kd_jax.models",
    "kd_jax.data",
    "kd_jax.train",
    "kd_jax.runner",
    "kd_jax.sweeps",
    # entry points
    "kd_jax.cli",
    "kd_jax.api",
    "kd_jax.gan_main",
    "kd_jax.sweep",
    "kd_jax.sweep_report",
    "kd_jax.carry",
    "kd_jax.main",
    "kd_jax",  # __init__: the API's names, resolved on first use
)


def modules() -> dict[str, Path]:
  out = {}
  for path in PACKAGE.rglob("*.py"):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    name = ".".join(rel.parts)
    out[name.removesuffix(".__init__")] = path
  return out


def layer(module: str) -> int:
  for i, prefix in enumerate(LAYERS):
    if module == prefix or module.startswith(prefix + "."):
      return i
  raise AssertionError(f"{module} is in no layer; add it to LAYERS in {__file__}")


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
  """module → the kd_jax modules it imports (``from a import b`` counts b when b is a module)."""
  graph: dict[str, set[str]] = {}
  for name, path in mods.items():
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        found |= {a.name for a in node.names if a.name.startswith("kd_jax.")}
      elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
          node.module.startswith("kd_jax"):
        for a in node.names:
          sub = f"{node.module}.{a.name}"
          found.add(sub if sub in mods else node.module)
    graph[name] = {m for m in found if m in mods and m != name}
  return graph


def test_every_module_has_a_layer():
  for name in modules():
    layer(name)


def test_no_module_imports_from_a_higher_layer():
  mods = modules()
  upward = [f"{m} (layer {LAYERS[layer(m)]}) imports {t} (layer {LAYERS[layer(t)]})"
            for m, targets in imports(mods).items() for t in sorted(targets)
            if layer(t) > layer(m) and t != "kd_jax"]
  assert not upward, "\n".join(upward)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_no_import_cycle():
  found = cycles(imports(modules()))
  assert not found, found


def test_the_checks_catch_what_they_are_for():
  """Controls: a made-up upward import and a made-up cycle are found by the same code."""
  assert layer("kd_jax.train.steps") > layer("kd_jax.kd.losses")
  assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
  assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("limit", [400])
def test_no_module_is_over_the_line_limit(limit):
  long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
          if (n := len(p.read_text().splitlines())) > limit}
  assert not long, f"modules over {limit} lines (one job each): {long}"
