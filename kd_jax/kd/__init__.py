"""Distillation maths: losses, ensembles, interpolation, CKA, loss landscapes, the metric table."""
