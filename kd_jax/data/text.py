"""Text as token sequences: tokenizer, vocabulary, encoding, cache, and the step's ``prepare``.

As the official code (torchtext ``basic_english``, vocabulary of training tokens with frequency
≥ ``min_freq``, reviews truncated to ``max_len`` tokens), written here in a few lines rather
than depending on torchtext (deprecated, and it pulls in PyTorch) for two regexes and a
counter. Id 0 is padding and id 1 the unknown token, so lengths follow from the padding and a
padded batch is plain ``int32 [N, max_len]`` that every pipeline carries like images.
"""
from __future__ import annotations

import collections
import hashlib
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from kd_jax.core import atomic
from kd_jax.core.batch import Batch
from kd_jax.core.errors import ConfigError

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
#: Sources whose inputs are token sequences (the text modality).
TEXT_SOURCES = ("text_folder", "tfds_text", "rotten_tomatoes")
_CACHE_FORMAT = 1

# torchtext's _basic_english_normalize: (pattern, replacement) applied in order after lowercasing.
_RULES = [(re.compile(p), r) for p, r in (
    (r"\'", " '  "), (r"\"", ""), (r"\.", " . "), (r"<br \/>", " "), (r",", " , "),
    (r"\(", " ( "), (r"\)", " ) "), (r"\!", " ! "), (r"\?", " ? "), (r"\;", " "), (r"\:", " "),
    (r"\s+", " "))]


def basic_english(text: str) -> list[str]:
  """Lowercase, split off . , ( ) ! ? and ', drop " ; : and HTML line breaks."""
  line = text.lower()
  for pattern, repl in _RULES:
    line = pattern.sub(repl, line)
  return line.split()


def build_vocab(token_lists: Iterable[Sequence[str]], min_freq: int) -> list[str]:
  """[<pad>, <unk>, tokens with count ≥ min_freq by descending count, then alphabetically]."""
  counts = collections.Counter(t for tokens in token_lists for t in tokens)
  kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
  return [PAD, UNK] + [t for t in kept if t not in (PAD, UNK)]


def encode(token_lists: Sequence[Sequence[str]], vocab: Sequence[str],
           max_len: int) -> np.ndarray:
  """int32 ``[N, max_len]``: ids of the first ``max_len`` tokens, unknown → 1, padded with 0."""
  index = {t: i for i, t in enumerate(vocab)}
  out = np.full((len(token_lists), max_len), PAD_ID, np.int32)
  for row, tokens in enumerate(token_lists):
    ids = [index.get(t, UNK_ID) for t in tokens[:max_len]]
    out[row, :len(ids)] = ids
  return out


def lengths_of(tokens: jax.Array) -> jax.Array:
  """True lengths of right-padded rows (padding id 0 occurs nowhere else)."""
  return jnp.sum(tokens != PAD_ID, axis=-1).astype(jnp.int32)


def check_text_params(max_len: int, min_freq: int) -> None:
  if int(max_len) <= 0:
    raise ConfigError(f"data.text.max_len={max_len} must be a positive number of tokens")
  if int(min_freq) < 1:
    raise ConfigError(f"data.text.min_freq={min_freq} must be >= 1")


def token_prepare(policy: str = "") -> Callable[[Batch, jax.Array], tuple[Any, jax.Array]]:
  """The text modality's step transform: tokens → ``(tokens, lengths)``, the model's input.

  Lengths come from the batch when its pipeline filled them, else from the padding.
  """
  if policy:
    raise ConfigError(f"augment={policy!r}: text inputs have no augmentation; set "
                      "teacher.augment and distill.augment to ''")

  def prepare(batch: Batch, key: jax.Array) -> tuple[Any, jax.Array]:
    del key
    tokens = batch.inputs.astype(jnp.int32)
    lengths = lengths_of(tokens) if batch.lengths is None else batch.lengths
    return (tokens, lengths), batch.real()

  return prepare


# ------------------------------------------------------------------ corpus → cached arrays


def encode_corpus(train_texts: Sequence[str], test_texts: Sequence[str] | None,
                  max_len: int, min_freq: int) -> dict[str, Any]:
  """Tokenizes, builds the vocabulary on the train texts only, encodes both splits."""
  check_text_params(max_len, min_freq)
  train_tokens = [basic_english(t) for t in train_texts]
  vocab = build_vocab(train_tokens, int(min_freq))
  out = {"train_tokens": encode(train_tokens, vocab, int(max_len)), "vocab": vocab}
  if test_texts is not None:
    out["test_tokens"] = encode([basic_english(t) for t in test_texts], vocab, int(max_len))
  return out


def vocab_sha256(vocab: Sequence[str]) -> str:
  return hashlib.sha256("\n".join(vocab).encode()).hexdigest()


def cached(cache_dir: Path, key: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
  """``build()`` once per key, stored as ``text-<key>.npz`` (vocabulary as a string array)."""
  digest = hashlib.sha256(f"v{_CACHE_FORMAT}|{key}".encode()).hexdigest()[:16]
  cache = cache_dir / f"text-{digest}.npz"
  if cache.exists():
    try:
      with np.load(cache, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
      arrays["vocab"] = [str(v) for v in arrays["vocab"]]
      arrays["meta"] = json.loads(str(arrays["meta"]))
      return arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
      pass  # A truncated or foreign file: rebuild.
  arrays = build()
  cache_dir.mkdir(parents=True, exist_ok=True)
  store = dict(arrays, vocab=np.array(arrays["vocab"]), meta=np.array(json.dumps(arrays["meta"])))
  with atomic.replacing(cache, "wb") as f:  # a kill while writing leaves no half cache
    np.savez(f, **store)
  return arrays
