"""kd_jax: does knowledge distillation really work? — a JAX/Flax reproduction and toolkit."""
from setuptools import find_packages, setup

setup(
    name="kd_jax",
    version="0.1.0",
    description="Knowledge-distillation fidelity experiments (Stanton et al., 2021) in JAX/Flax.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["kd_jax", "kd_jax.*"]),
    package_data={"kd_jax.data": ["assets/*.npz"]},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.7.1,<0.11",          # jax.shard_map at top level
        "flax>=0.10,<0.13",
        "optax>=0.2.5,<0.3",         # optax.lbfgs
        "orbax-checkpoint>=0.11,<0.13",
        "tensorflow-datasets>=4.9.9,<5",
        "array-record>=0.7",         # tfds.data_source reads array_record files without TensorFlow
        "ml-collections>=1.0,<2",
        "chex>=0.1.90",
        "absl-py>=2.0",
        "numpy>=1.26",
        "pillow>=10",                # image-folder source (JPEG/PNG decode)
        "matplotlib>=3.8",           # figure and landscape plots
        "tensorboardX>=2.6",         # TensorBoard event files without TensorFlow
        "grain>=0.2.12",             # host-streamed input pipeline (data.pipeline=streamed)
    ],
    extras_require={
        "test": ["pytest>=8", "scipy>=1.11"],
        # `tfds build` needs TensorFlow to prepare a dataset once; training never imports it.
        # scipy reads svhn_cropped's .mat files while preparing.
        "prepare": ["tensorflow-cpu>=2.16", "scipy>=1.11"],
        # benchmarks/ times kd_jax against the same steps written in PyTorch; kd_jax never imports it.
        "bench": ["torch>=2.13"],
    },
)
