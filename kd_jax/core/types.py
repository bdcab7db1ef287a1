"""Type names shared across layers, defined once."""
from __future__ import annotations

from typing import Any, Callable

#: A nested structure of arrays (parameters, batch statistics, optimizer state).
PyTree = Any
#: What an evaluation returns: ``{split: {metric: value}}``.
Results = dict[str, dict[str, float]]
#: An evaluation of a train state, given the results so far.
Evaluator = Callable[[Any, Results], Results]
