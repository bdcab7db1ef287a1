"""``python -m kd_jax.sweep_report --rebuild DIR``: a results folder's table, CSV and plots
rebuilt from its files (``kd_jax.sweeps.rebuild``)."""
from kd_jax.sweeps.rebuild import main

if __name__ == "__main__":
  main()
