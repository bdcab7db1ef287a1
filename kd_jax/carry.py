"""``python -m kd_jax.carry pack WORKDIR OUT`` / ``unpack OUT WORKDIR``: a run's resumable state
as a few files of at most 16 MiB (and back), to carry a run between machines lent for minutes
whose inputs and outputs are capped in size and count (``kd_jax.core.carry``).

    python -m kd_jax.carry pack runs/c10 out/ --latest_only --max_mib=60   # on the lent machine
    python -m kd_jax.carry unpack out/ runs/c10                            # on the next one
    python -m kd_jax.main --config=... --workdir=runs/c10 --time_budget=9m  # resumes
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from kd_jax.core import carry
from kd_jax.core.errors import ConfigError


def main(argv: Optional[Sequence[str]] = None) -> None:
  p = argparse.ArgumentParser(prog="python -m kd_jax.carry", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = p.add_subparsers(dest="verb", required=True)
  pk = sub.add_parser("pack", help="write WORKDIR's state into OUT as size-capped parts")
  pk.add_argument("workdir", type=Path)
  pk.add_argument("out", type=Path)
  pk.add_argument("--name", default="state", help="file name stem of the parts and manifest")
  pk.add_argument("--part_mib", type=float, default=16.0, help="largest part, MiB")
  pk.add_argument("--max_mib", type=float, default=None,
                  help="refuse (one line, nothing written) when the parts exceed this, MiB")
  pk.add_argument("--with_cache", action="store_true",
                  help="also carry the JAX compilation cache (jax_cache/): no recompiling")
  pk.add_argument("--latest_only", action="store_true",
                  help="of each checkpoint folder only the newest step (drops the fallback "
                       "step and a teacher's kept trajectory)")
  up = sub.add_parser("unpack", help="check OUT's parts and extract them into WORKDIR")
  up.add_argument("out", type=Path)
  up.add_argument("workdir", type=Path)
  up.add_argument("--name", default="state")
  a = p.parse_args(argv)
  try:
    if a.verb == "pack":
      if a.part_mib <= 0 or (a.max_mib is not None and a.max_mib <= 0):
        raise ConfigError("--part_mib and --max_mib must be positive sizes in MiB")
      m = carry.pack(a.workdir, a.out, a.name, int(a.part_mib * carry.MiB),
                     None if a.max_mib is None else int(a.max_mib * carry.MiB),
                     a.with_cache, a.latest_only)
      print(f"packed {m['files']} files of {a.workdir} into {len(m['parts'])} part(s), "
            f"{m['bytes'] / carry.MiB:.1f} MiB, in {a.out} (manifest {a.name}.json)")
    else:
      n = carry.unpack(a.out, a.workdir, a.name)
      print(f"unpacked {n} files into {a.workdir}; rerun the same command there to resume")
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  main()
