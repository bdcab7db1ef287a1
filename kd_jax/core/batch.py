"""The one batch type every step receives, whatever the input: images, tokens or samples.

Fields are arrays with the same leading axes (``[members, batch]`` inside a step chunk, where
each member of an ensemble sees its own examples). ``lengths`` is ``None`` unless a modality
needs it (token sequences); a field that is ``None`` is simply absent from the pytree, so
device mapping derives its specs from whichever fields a batch has.
"""
from __future__ import annotations

from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P


@flax.struct.dataclass
class Batch:
  """Inputs with their labels; ``mask`` 0 marks padding, ``is_real`` False marks synthetic."""
  inputs: jax.Array                 # uint8 NHWC images, int32 tokens, float samples
  labels: jax.Array                 # int32, −1 = no label (OOD or generated data)
  mask: jax.Array                   # bool: 0 for padding that fills an epoch's last batch
  is_real: Optional[jax.Array] = None  # bool; None = every example is real
  lengths: Optional[jax.Array] = None  # int32 sequence lengths (text)

  def real(self) -> jax.Array:
    return jnp.ones(self.labels.shape, bool) if self.is_real is None else self.is_real


def sharded_specs(tree: Any, batch_axis: int, axis_name: str) -> Any:
  """A PartitionSpec per leaf of ``tree`` that splits its ``batch_axis`` over ``axis_name``.

  The specs follow the pytree, so a pipeline that adds a field (lengths, keys) needs no
  hand-kept list of positions next to the step.
  """
  spec = P(*([None] * batch_axis + [axis_name]))
  return jax.tree.map(lambda _: spec, tree)
