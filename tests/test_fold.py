"""BatchNorm folding of a frozen teacher: the folded model computes the eval-mode logits of the
unfolded one (the reference), for basic and bottleneck depths with non-trivial statistics."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kd_jax.core.cache import CHEAP_COMPILE
from kd_jax.models import get_model
from kd_jax.models.fold import can_fold, fold_batchnorm, teacher_for_inference


def _random_bn(variables: dict, seed: int) -> dict:
  """Replaces every norm's scale/bias/mean/var by random values far from the identity."""
  rng = np.random.default_rng(seed)
  draw = {"scale": lambda s: rng.uniform(0.5, 1.5, s), "bias": lambda s: rng.normal(0, 0.3, s),
          "mean": lambda s: rng.normal(0, 0.5, s), "var": lambda s: rng.uniform(0.3, 2.0, s)}

  def walk(tree, path=()):
    if not isinstance(tree, dict):
      name = path[-1]
      is_norm = any("norm" in p for p in path)
      return jnp.asarray(draw[name](tree.shape), tree.dtype) if is_norm and name in draw else tree
    return {k: walk(v, path + (k,)) for k, v in tree.items()}

  return {"params": walk(variables["params"]), "batch_stats": walk(variables["batch_stats"])}


#: Compiled cheaply: XLA's full optimization of a 47-layer net costs more than running it.
_jit = functools.partial(jax.jit, compiler_options=CHEAP_COMPILE)


def _init(model, seed: int, x: jax.Array) -> dict:
  return _jit(lambda k: model.init(k, x[:1], train=False))(jax.random.key(seed))


@pytest.mark.parametrize("depth,folded_per_block", [(8, ("norm2",)), (47, ("norm2", "norm3"))])
def test_folded_teacher_gives_the_eval_mode_logits(depth, folded_per_block):
  model = get_model("preresnet", 10, depth=depth, width=0.5)
  x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  variables = _random_bn(_init(model, 0, x), seed=depth)
  reference = _jit(model.apply)(variables, x)

  folded_model, folded = teacher_for_inference(model, variables, enabled=True)
  got = _jit(folded_model.apply)(folded, x)
  scale = float(jnp.max(jnp.abs(reference)))
  assert scale > 1.0  # the statistics are not near the identity: folding has work to do
  np.testing.assert_allclose(np.asarray(got), np.asarray(reference), rtol=0,
                             atol=2e-5 * scale)
  block = folded["params"]["stage1_block1"]
  assert not set(folded_per_block) & set(block) and "norm1" in block
  assert all("bias" in block[c] for c in ("conv1", "conv2")[:len(folded_per_block)])


def test_stacked_members_fold_member_by_member():
  model = get_model("preresnet", 10, depth=8, width=0.5)
  x = jax.random.normal(jax.random.key(2), (2, 8, 8, 3))
  members = [_random_bn(_init(model, i, x), seed=i) for i in range(2)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *members)
  folded = fold_batchnorm(stacked)
  apply, apply_folded = _jit(model.apply), _jit(model.clone(folded=True).apply)
  for i, v in enumerate(members):
    reference = np.asarray(apply(v, x))
    got = np.asarray(apply_folded(jax.tree.map(lambda a, i=i: a[i], folded), x))
    np.testing.assert_allclose(got, reference, rtol=0, atol=2e-5 * np.abs(reference).max())


def test_models_without_foldable_norms_pass_through():
  ln = get_model("resnet20_ln", 10)
  assert not can_fold(ln) and not can_fold(get_model("lenet5", 10))
  assert teacher_for_inference(ln, {"params": {}}, enabled=True) == (ln, {"params": {}})
  with pytest.raises(ValueError, match="eval-mode"):
    bn = get_model("preresnet", 10, depth=8).clone(folded=True)
    bn.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=True)
