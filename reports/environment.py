"""What a measurement ran on: versions, CPU, threads and BLAS, recorded with every result."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "version", "num_threads", "architecture")
    return [{k: pool.get(k) for k in keys} for pool in threadpool_info()]


# the variables that size the BLAS / OpenMP thread pools when a process starts
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def installed_versions() -> dict[str, str | None]:
    """Installed versions of the frameworks and report tools, read from package metadata
    (nothing is imported: a parent process must not load PyTorch or TensorFlow)."""
    versions = {name: _version(name) for name in (
        "numpy", "torch", "tensorflow", "keras", "scikit-learn", "threadpoolctl", "tqdm",
        "dask", "distributed")}
    # TensorFlow's CPU-only wheel is published under another name
    versions["tensorflow"] = versions["tensorflow"] or _version("tensorflow-cpu")
    return versions


def environment(framework: str | None = None) -> dict[str, Any]:
    """Versions, CPU, thread counts and BLAS of this process (importing only ``framework``)."""
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "numpy": _version("numpy"),
        "versions": installed_versions(),
        "thread_variables": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "blas": _blas(),
    }
    if framework == "torch":
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    elif framework == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["keras"] = _version("keras")
        info["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        info["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    return info
