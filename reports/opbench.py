"""Op benchmarks: forward and backward time of each op in one backend, across sizes.

Each op is called through the backend's public functions (``B.conv2d_forward`` /
``B.conv2d_backward``, ...) with NumPy arrays in and out, exactly as a user calls them, so a
framework's time includes its conversions at the edges (NumPy -> tensor -> NumPy; NCHW <-> NHWC
in TensorFlow). The sizes of a preset vary the batch, the image size and the channels one at a
time, so scaling shows; the first size of every op is small enough for the slow loop-based
reference (``framework="reference"``), which runs only that size, to show the NumPy speed-up.

Timing: ``warmup`` calls first (caches, tracing, thread start-up), then ``repeats`` timed
repeats; a repeat runs the call ``number`` times, ``number`` chosen so that a repeat lasts at
least ``min_seconds`` (tiny ops would otherwise measure the clock). Quoted: the median and the
90th percentile of the per-call times, in milliseconds.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

import impls

OPS = ("conv2d", "max_pool2d", "avg_pool2d", "linear", "relu", "batchnorm",
       "local_response_norm", "softmax_cross_entropy")

# Per op, its sizes: dimension letters as in the size label (N batch, C channels, H x W image,
# F filters / output features, D input features, K classes, k kernel). The first size is the
# small one every backend and the reference run.
_IMAGE_SMALL = dict(N=8, C=4, H=8, W=8)
_QUICK_IMAGES = (_IMAGE_SMALL, dict(N=32, C=16, H=14, W=14), dict(N=128, C=16, H=14, W=14),
                 dict(N=32, C=16, H=28, W=28))
_FULL_IMAGES = _QUICK_IMAGES + (dict(N=32, C=64, H=28, W=28), dict(N=128, C=32, H=32, W=32))

SIZES: dict[str, dict[str, tuple[dict[str, int], ...]]] = {
    "quick": {
        "conv2d": (dict(N=8, C=1, H=8, W=8, F=8, k=3), dict(N=32, C=1, H=28, W=28, F=8, k=5),
                   dict(N=128, C=1, H=28, W=28, F=8, k=5),
                   dict(N=32, C=16, H=14, W=14, F=32, k=3)),
        "max_pool2d": tuple({**s, "k": 2} for s in _QUICK_IMAGES),
        "avg_pool2d": tuple({**s, "k": 2} for s in _QUICK_IMAGES),
        "linear": (dict(N=8, D=64, F=32), dict(N=64, D=784, F=100), dict(N=256, D=784, F=100),
                   dict(N=64, D=3136, F=256)),
        "relu": _QUICK_IMAGES,
        "batchnorm": _QUICK_IMAGES,
        "local_response_norm": tuple({**s, "size": 5} for s in _QUICK_IMAGES),
        "softmax_cross_entropy": (dict(N=8, K=10), dict(N=100, K=10), dict(N=1000, K=10),
                                  dict(N=100, K=1000)),
    },
    "full": {
        "conv2d": (dict(N=8, C=1, H=8, W=8, F=8, k=3), dict(N=32, C=1, H=28, W=28, F=8, k=5),
                   dict(N=128, C=1, H=28, W=28, F=8, k=5),
                   dict(N=32, C=16, H=14, W=14, F=32, k=3),
                   dict(N=64, C=3, H=32, W=32, F=32, k=5),
                   dict(N=64, C=64, H=16, W=16, F=64, k=5),
                   dict(N=64, C=32, H=32, W=32, F=64, k=3)),
        "max_pool2d": tuple({**s, "k": 2} for s in _FULL_IMAGES),
        "avg_pool2d": tuple({**s, "k": 2} for s in _FULL_IMAGES),
        "linear": (dict(N=8, D=64, F=32), dict(N=64, D=784, F=100), dict(N=256, D=784, F=100),
                   dict(N=64, D=3136, F=256), dict(N=256, D=4096, F=1024),
                   dict(N=1024, D=4096, F=256)),
        "relu": _FULL_IMAGES,
        "batchnorm": _FULL_IMAGES,
        "local_response_norm": tuple({**s, "size": 5} for s in _FULL_IMAGES),
        "softmax_cross_entropy": (dict(N=8, K=10), dict(N=100, K=10), dict(N=1000, K=10),
                                  dict(N=100, K=1000), dict(N=10000, K=10),
                                  dict(N=1000, K=1000)),
    },
}

# warm-up calls, timed repeats, shortest repeat (s)
TIMING = {"quick": (2, 5, 0.002), "full": (3, 15, 0.01), "reference": (1, 3, 0.0)}


@dataclass(frozen=True)
class Case:
    """One op at one size: ``forward()`` runs the forward; ``backward(out)`` the backward on
    the cache of a forward output ``out`` (None: the op returns its gradient itself)."""

    forward: Callable[[], Any]
    backward: Callable[[Any], Any] | None


def size_label(size: dict[str, int]) -> str:
    """``{"N": 64, "C": 3}`` -> ``"N64-C3"``; LRN's window is ``n`` in the label."""
    return "-".join(f"{'n' if key == 'size' else key}{value}" for key, value in size.items())


def load_backend(framework: str) -> ModuleType:
    """The backend module of ``framework``; "reference" is the loop-based reference.ops."""
    if framework == "reference":
        return importlib.import_module("reference.ops")
    return impls.load(framework)


def _with_dy(forward: Callable[[], Any], backward: Callable[..., Any],
             rng: np.random.Generator, dtype: str) -> Case:
    """A case whose backward takes (dy, cache): dy drawn once, shaped like the output."""
    y = forward()[0]
    dy = rng.standard_normal(np.shape(y)).astype(dtype)
    return Case(forward, lambda out: backward(dy, out[1]))


def make_case(B: ModuleType, op: str, s: dict[str, int], rng: np.random.Generator,
              dtype: str = "float32") -> Case:
    """The inputs of ``op`` at size ``s``, drawn from ``rng``, and the calls to time."""

    def arr(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(dtype)

    if op == "softmax_cross_entropy":
        logits, labels = arr(s["N"], s["K"]), rng.integers(0, s["K"], s["N"])  # (N, K), (N,)
        return Case(lambda: B.softmax_cross_entropy(logits, labels), None)
    if op == "linear":
        x, w, b = arr(s["N"], s["D"]), arr(s["F"], s["D"]), arr(s["F"])
        return _with_dy(lambda: B.linear_forward(x, w, b), B.linear_backward, rng, dtype)
    x = arr(s["N"], s["C"], s["H"], s["W"])  # (N, C, H, W)
    if op == "conv2d":
        w, b = arr(s["F"], s["C"], s["k"], s["k"]), arr(s["F"])
        return _with_dy(lambda: B.conv2d_forward(x, w, b, 1, s["k"] // 2), B.conv2d_backward,
                        rng, dtype)
    if op == "max_pool2d":
        return _with_dy(lambda: B.max_pool2d_forward(x, s["k"]), B.max_pool2d_backward,
                        rng, dtype)
    if op == "avg_pool2d":
        return _with_dy(lambda: B.avg_pool2d_forward(x, s["k"]), B.avg_pool2d_backward,
                        rng, dtype)
    if op == "relu":
        return _with_dy(lambda: B.relu_forward(x), B.relu_backward, rng, dtype)
    if op == "batchnorm":
        gamma, beta = arr(s["C"]), arr(s["C"])
        mean, var = np.zeros(s["C"], dtype), np.ones(s["C"], dtype)
        return _with_dy(lambda: B.batchnorm_forward(x, gamma, beta, mean, var),
                        B.batchnorm_backward, rng, dtype)
    if op == "local_response_norm":
        return _with_dy(lambda: B.local_response_norm_forward(x, s["size"]),
                        B.local_response_norm_backward, rng, dtype)
    raise ValueError(f"op: got {op!r}, expected one of {', '.join(OPS)}")


def time_call(fn: Callable[[], Any], warmup: int, repeats: int,
              min_seconds: float) -> tuple[float, float]:
    """(median, 90th percentile) of the per-call time of ``fn``, in milliseconds."""
    start = time.perf_counter()
    for _ in range(max(warmup, 1)):
        fn()
    per_call = (time.perf_counter() - start) / max(warmup, 1)
    number = max(1, math.ceil(min_seconds / per_call)) if per_call > 0 else 1
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    ms = np.array(times) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 90))


def run(framework: str, preset: str = "quick", ops: tuple[str, ...] = OPS,
        seed: int = 0, dtype: str = "float32") -> list[dict[str, Any]]:
    """Time every op of ``ops`` at every size of ``preset`` ("quick" or "full") in
    ``framework`` ("reference": only each op's first, small size, float64 inside).

    Returns rows ``{"op", "size", "direction", "metric", "value", "unit"}``: metrics
    ``time_median`` and ``time_p90`` in ms, directions "forward" and "backward";
    softmax_cross_entropy returns its gradient with the loss, so it has "forward" only.
    """
    if preset not in SIZES:
        raise ValueError(f"preset: got {preset!r}, expected one of {', '.join(SIZES)}")
    B = load_backend(framework)
    warmup, repeats, min_seconds = TIMING["reference" if framework == "reference" else preset]
    rng = np.random.default_rng(seed)
    rows = []
    for op in ops:
        sizes = SIZES[preset][op][:1] if framework == "reference" else SIZES[preset][op]
        for size in sizes:
            case = make_case(B, op, size, rng, dtype)
            timings = {"forward": time_call(case.forward, warmup, repeats, min_seconds)}
            if case.backward is not None:
                out = case.forward()
                timings["backward"] = time_call(lambda c=case, o=out: c.backward(o), warmup,
                                                repeats, min_seconds)
            for direction, (median, p90) in timings.items():
                for metric, value in (("time_median", median), ("time_p90", p90)):
                    rows.append({"op": op, "size": size_label(size), "direction": direction,
                                 "metric": metric, "value": value, "unit": "ms"})
    return rows
