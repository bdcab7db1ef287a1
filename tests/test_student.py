"""The student's start checks the teacher member it is asked to start from."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kd_jax.core.errors import ConfigError
from kd_jax.runner import student
from kd_jax.runner.teachers import Teacher


def test_a_member_the_teacher_lacks_is_one_line():
  final = {"params": {"w": np.zeros((2, 3))}, "batch_stats": {}}  # 2 stacked members
  t = Teacher(model=None, final=final, initial=final, entry=Path("."), trained_now=False)
  student._check_member(1, t)  # the last one exists
  with pytest.raises(ConfigError, match=r"^distill\.init\.member=2 but the teacher has 2 "
                     r"members; use 0\.\.1$"):
    student._check_member(2, t)
