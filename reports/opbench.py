"""Op benchmarks: forward and backward time of each op in one backend, across sizes.

Each op is called through the backend's public functions (``B.conv2d_forward`` /
``B.conv2d_backward``, ...) with NumPy arrays in and out, exactly as a user calls them, so a
framework's time includes its conversions at the edges (NumPy -> tensor -> NumPy; NCHW <-> NHWC
in TensorFlow). The sizes of a preset vary the batch, the image size and the channels one at a
time, so scaling shows; the first size of every op is small enough for the slow loop-based
reference (``framework="reference"``), which runs only that size, to show the NumPy speed-up.
The full preset adds, for the reference too, the convolution issue 5 names (N=64, C=3, 32x32,
F=32, k=5): the speed-up at a real first layer's size.

Timing: ``warmup`` calls first (caches, tracing, thread start-up), then ``repeats`` timed
repeats; a repeat runs the call ``number`` times, ``number`` chosen so that a repeat lasts at
least ``min_seconds`` (tiny ops would otherwise measure the clock). Quoted: the median and the
90th percentile of the per-call times, in milliseconds, and for conv2d and linear the FLOP
rate of the median (reports/flops.py: the multiply-adds; backward = dx and dW, twice the
forward).
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

from .flops import conv2d_flops, linear_flops

OPS = ("conv2d", "max_pool2d", "avg_pool2d", "linear", "relu", "batchnorm",
       "local_response_norm", "softmax_cross_entropy")

# Per op, its sizes: dimension letters as in the size label (N batch, C channels, H x W image,
# F filters / output features, D input features, K classes, k kernel). The first size is the
# small one every backend and the reference run.
_IMAGE_SMALL = dict(N=8, C=4, H=8, W=8)
_QUICK_IMAGES = (_IMAGE_SMALL, dict(N=32, C=16, H=14, W=14), dict(N=128, C=16, H=14, W=14),
                 dict(N=32, C=16, H=28, W=28))
_FULL_IMAGES = _QUICK_IMAGES + (dict(N=32, C=64, H=28, W=28), dict(N=128, C=32, H=32, W=32))
# the convolution issue 5 compares with the loop reference: a CIFAR-sized first layer
ISSUE_CONV = dict(N=64, C=3, H=32, W=32, F=32, k=5)

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
                   dict(N=32, C=16, H=14, W=14, F=32, k=3), ISSUE_CONV,
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

# Sizes the reference runs besides each op's first, with their own timing: the loop reference
# took 9 s forward and 14 s backward for ISSUE_CONV here, so no warm-up and one repeat.
REFERENCE_EXTRA: dict[str, dict[str, tuple[dict[str, int], ...]]] = {
    "quick": {}, "full": {"conv2d": (ISSUE_CONV,)}}
# warm-up calls, timed repeats, shortest repeat (s)
TIMING = {"quick": (2, 5, 0.002), "full": (3, 15, 0.01), "reference": (1, 3, 0.0),
          "reference_extra": (0, 1, 0.0)}


@dataclass(frozen=True)
class Case:
    """One op at one size: ``forward()`` runs the forward; ``backward(out)`` the backward on
    the cache of a forward output ``out`` (None: the op returns its gradient itself);
    ``flops``: the forward's FLOPs where they are counted (conv2d, linear), else None."""

    forward: Callable[[], Any]
    backward: Callable[[Any], Any] | None
    flops: int | None = None


def size_label(size: dict[str, int]) -> str:
    """``{"N": 64, "C": 3}`` -> ``"N64-C3"``; LRN's window is ``n`` in the label."""
    return "-".join(f"{'n' if key == 'size' else key}{value}" for key, value in size.items())


def load_backend(framework: str) -> ModuleType:
    """The backend module of ``framework``; "reference" is the loop-based reference.ops."""
    if framework == "reference":
        return importlib.import_module("reference.ops")
    return impls.load(framework)


def _with_dy(forward: Callable[[], Any], backward: Callable[..., Any],
             rng: np.random.Generator, dtype: str, flops: int | None = None) -> Case:
    """A case whose backward takes (dy, cache): dy drawn once, at the first backward, shaped
    like the output (no extra forward call: the reference's take seconds)."""
    drawn: list[np.ndarray] = []

    def run_backward(out: Any) -> Any:
        if not drawn:
            drawn.append(rng.standard_normal(np.shape(out[0])).astype(dtype))
        return backward(drawn[0], out[1])

    return Case(forward, run_backward, flops)


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
        return _with_dy(lambda: B.linear_forward(x, w, b), B.linear_backward, rng, dtype,
                        linear_flops(s["N"], s["D"], s["F"]))
    x = arr(s["N"], s["C"], s["H"], s["W"])  # (N, C, H, W)
    if op == "conv2d":
        w, b = arr(s["F"], s["C"], s["k"], s["k"]), arr(s["F"])
        pad = s["k"] // 2
        oh, ow = s["H"] + 2 * pad - s["k"] + 1, s["W"] + 2 * pad - s["k"] + 1  # stride 1
        return _with_dy(lambda: B.conv2d_forward(x, w, b, 1, pad), B.conv2d_backward, rng,
                        dtype, conv2d_flops(s["N"], s["C"], s["F"], oh, ow, s["k"], s["k"]))
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
              min_seconds: float) -> tuple[float, float, Any]:
    """(median, 90th percentile) of the per-call time of ``fn`` in milliseconds, and the last
    call's result. ``warmup`` 0: no untimed call, and every repeat is a single call (for calls
    that take seconds)."""
    out, number = None, 1
    if warmup > 0:
        start = time.perf_counter()
        for _ in range(warmup):
            out = fn()
        per_call = (time.perf_counter() - start) / warmup
        number = max(1, math.ceil(min_seconds / per_call)) if per_call > 0 else 1
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            out = fn()
        times.append((time.perf_counter() - start) / number)
    ms = np.array(times) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 90)), out


def _sizes(framework: str, preset: str, op: str) -> list[tuple[dict[str, int], str]]:
    """(size, timing key) of every size ``framework`` runs ``op`` at."""
    if framework != "reference":
        return [(size, preset) for size in SIZES[preset][op]]
    return ([(SIZES[preset][op][0], "reference")]
            + [(size, "reference_extra") for size in REFERENCE_EXTRA[preset].get(op, ())])


def run(framework: str, preset: str = "quick", ops: tuple[str, ...] = OPS,
        seed: int = 0, dtype: str = "float32") -> list[dict[str, Any]]:
    """Time every op of ``ops`` at every size of ``preset`` ("quick" or "full") in
    ``framework`` ("reference": only each op's first, small size and REFERENCE_EXTRA's,
    float64 inside).

    Returns rows ``{"op", "size", "direction", "metric", "value", "unit"}``: metrics
    ``time_median`` and ``time_p90`` in ms, directions "forward" and "backward";
    softmax_cross_entropy returns its gradient with the loss, so it has "forward" only; conv2d
    and linear also ``gflops`` (GFLOP/s of the median).
    """
    if preset not in SIZES:
        raise ValueError(f"preset: got {preset!r}, expected one of {', '.join(SIZES)}")
    B = load_backend(framework)
    rng = np.random.default_rng(seed)
    rows = []
    for op in ops:
        for size, timing in _sizes(framework, preset, op):
            warmup, repeats, min_seconds = TIMING[timing]
            case = make_case(B, op, size, rng, dtype)
            median, p90, out = time_call(case.forward, warmup, repeats, min_seconds)
            timings = {"forward": (median, p90)}
            if case.backward is not None:
                median, p90, _ = time_call(lambda c=case, o=out: c.backward(o), warmup,
                                           repeats, min_seconds)
                timings["backward"] = (median, p90)
            label = size_label(size)
            for direction, (median, p90) in timings.items():
                found = [("time_median", median, "ms"), ("time_p90", p90, "ms")]
                if case.flops is not None:  # backward: dx and dW, each as many as forward
                    flops = case.flops * (2 if direction == "backward" else 1)
                    found.append(("gflops", flops / (median * 1e-3) / 1e9, "GFLOP/s"))
                rows += [{"op": op, "size": label, "direction": direction, "metric": metric,
                          "value": value, "unit": unit} for metric, value, unit in found]
    return rows
