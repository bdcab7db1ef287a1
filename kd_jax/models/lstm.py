"""Bidirectional LSTM text classifier, as the official ``gnosis/models/lstm.py``.

Embedding → ``depth`` bidirectional LSTM layers → linear head on [final forward hidden state,
final backward hidden state] of the top layer. Padding is handled by lengths, as PyTorch's
packed sequences do: the forward state stops updating after each row's last true token, and
the backward direction reads each row's true tokens reversed (so it starts at the last true
token, not at the padding).

Parameterisation as ``torch.nn.LSTM``: gates in the order (input, forget, cell, output), two
bias vectors ``b_ih`` and ``b_hh`` per layer and direction. Their sum is one bias as a
function, but both are drawn from U(−1/√H, 1/√H) and each gets the same gradient and its own
weight decay, so keeping two keeps the official initial distribution and SGD trajectory.
The embedding is N(0, 1) (``nn.Embedding``) and the head PyTorch's default Linear init.

Input: ``(tokens int32 [B, L], lengths int32 [B])``; a bare ``tokens`` array means every row
is full length (used to initialize from a zeros array of the input shape).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from kd_jax.models.registry import MODELS
from kd_jax.models.init import torch_dense


def _uniform(bound: float):
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def reverse_within(x: jax.Array, lengths: jax.Array) -> jax.Array:
  """Each row's first ``length`` steps reversed, padding left in place (an involution)."""
  t = jnp.arange(x.shape[1])[None, :]
  idx = jnp.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
  return jnp.take_along_axis(x, idx.reshape(idx.shape + (1,) * (x.ndim - 2)), axis=1)


class LSTMDirection(nn.Module):
  """One direction of one layer: a masked scan; returns (final h, all h [B, L, H])."""
  hidden: int

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    h4, init = 4 * self.hidden, _uniform(1.0 / math.sqrt(self.hidden))
    w_ih = self.param("w_ih", init, (x.shape[-1], h4))
    w_hh = self.param("w_hh", init, (self.hidden, h4))
    b_ih, b_hh = self.param("b_ih", init, (h4,)), self.param("b_hh", init, (h4,))
    xw = jnp.einsum("ble,eg->lbg", x, w_ih) + b_ih + b_hh   # time-major for the scan

    def step(carry, inp):
      h, c = carry
      xw_t, m_t = inp
      i, f, g, o = jnp.split(xw_t + h @ w_hh, 4, axis=-1)
      c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
      h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
      m = m_t[:, None]
      h, c = jnp.where(m, h_new, h), jnp.where(m, c_new, c)
      return (h, c), h

    zeros = jnp.zeros((x.shape[0], self.hidden), xw.dtype)
    (h, _), hs = lax.scan(step, (zeros, zeros), (xw, mask.T))
    return h, jnp.swapaxes(hs, 0, 1)


@MODELS.register("bilstm")
class BiLSTM(nn.Module):
  num_classes: int
  vocab_size: int = 2
  embedding_size: int = 128
  lstm_cell_size: int = 100
  depth: int = 1
  bn_axis_name: Any = None  # no BatchNorm; accepted like every model's

  @nn.compact
  def __call__(self, inputs: Any, train: bool = False) -> jax.Array:
    del train  # no dropout or BatchNorm
    if isinstance(inputs, (tuple, list)):
      tokens, lengths = inputs
    else:
      tokens = inputs
      lengths = jnp.full(tokens.shape[:1], tokens.shape[1], jnp.int32)
    tokens = tokens.astype(jnp.int32)
    x = nn.Embed(self.vocab_size, self.embedding_size,
                 embedding_init=nn.initializers.normal(1.0))(tokens)
    mask = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]
    for layer in range(self.depth):
      h_f, out_f = LSTMDirection(self.lstm_cell_size, name=f"l{layer}_fwd")(x, mask)
      h_b, out_b = LSTMDirection(self.lstm_cell_size, name=f"l{layer}_bwd")(
          reverse_within(x, lengths), mask)
      x = jnp.concatenate([out_f, reverse_within(out_b, lengths)], axis=-1)
    return torch_dense(self.num_classes, 2 * self.lstm_cell_size)(
        jnp.concatenate([h_f, h_b], axis=-1))
