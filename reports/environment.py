"""What a measurement ran on: versions, CPU, threads and BLAS, recorded with every result."""

from __future__ import annotations

import ctypes
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


# Set on some machines because older OpenBLAS builds crash or compute wrongly on their cores;
# they make OpenBLAS use the kernel of another (older) core type, which slows a current NumPy.
OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def installed_versions() -> dict[str, str | None]:
    """Installed versions of the frameworks and report tools, read from package metadata
    (nothing is imported: a parent process must not load PyTorch or TensorFlow)."""
    versions = {name: _version(name) for name in (
        "numpy", "torch", "tensorflow", "keras", "scikit-learn", "threadpoolctl", "tqdm",
        "dask", "distributed")}
    # TensorFlow's CPU-only wheel is published under another name
    versions["tensorflow"] = versions["tensorflow"] or _version("tensorflow-cpu")
    return versions


# glibc's mallopt parameters (malloc.h) and the value both get: freed memory up to 1 GiB stays
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
KEEP_FREED_BYTES = 2**30
_allocator: dict[str, Any] = {"setting": "the C library's default"}


def keep_freed_memory() -> dict[str, Any]:
    """Let this process's C heap keep freed memory for reuse (glibc); what was set.

    By default glibc serves a large block (from 128 KiB, a threshold that rises with use up to
    32 MiB) with fresh pages from the OS and returns them when it is freed, and gives back the
    heap's free top beyond 128 KiB. A training step that allocates and frees big temporaries,
    as the NumPy backend's does, then page-faults them in again at every step: measured here,
    allocating, filling and freeing 60 MB took 12 ms against 5 ms in reused memory, and
    simple_cnn's first conv forward (batch 100) 5.3 ms against 2.8 ms. Setting both thresholds
    to 1 GiB keeps that memory resident. Every cell calls this, whatever its framework, so
    every framework runs with the same allocator settings; ``environment()`` records them. A
    no-op without glibc's mallopt.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        _allocator.update(setting="unchanged: no glibc mallopt here")
        return dict(_allocator)
    done = [mallopt(param, KEEP_FREED_BYTES) == 1
            for param in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD)]
    _allocator.update(setting=("glibc mallopt M_MMAP_THRESHOLD and M_TRIM_THRESHOLD = "
                               f"{KEEP_FREED_BYTES} bytes" if all(done) else
                               "unchanged: glibc refused mallopt"))
    return dict(_allocator)


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
        "allocator": dict(_allocator),
    }
    forced = {name: os.environ[name] for name in OPENBLAS_VARIABLES if name in os.environ}
    if forced:  # recorded only when set: the report then warns
        info["openblas_variables"] = forced
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
