"""Training: the pure per-device steps, the host loop, optimizers, evaluators, GAN steps, metric writers."""
