"""Data: where images come from (sources), how they are split, augmented and fed to devices."""
