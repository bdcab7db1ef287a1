"""Model registry: ``get_model(name, num_classes, **kwargs)`` builds a Flax linen module.

Every model is called as ``module.apply(variables, x, train=bool)`` on float32 NHWC inputs (text
models: ``(tokens, lengths)``) and returns float32 logits; with ``return_features=True`` it returns ``(logits, [stage outputs])``
(used for CKA). BatchNorm layers take ``bn_axis_name`` so the trainer can average batch
statistics across the device mesh.
"""
from __future__ import annotations

# The registration list: importing a model module adds its models to MODELS.
from kd_jax.models import conv1d, lenet, lstm, preresnet, resnet, sngan, vgg  # noqa: F401
from kd_jax.models.registry import MODELS, check_options, get_model

__all__ = ["MODELS", "check_options", "get_model"]
