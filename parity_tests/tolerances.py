"""Every tolerance of the parity suite, in one table, each with the reason for its size.

Errors are measured as ``max|got - expected| / max|expected|`` (normalised by the largest
magnitude, see design.md): element-wise rtol is meaningless near zero elements, and the
frameworks legitimately sum in different orders.
"""

from __future__ import annotations

import numpy as np

# (dtype, kind) -> largest accepted normalised error.
TOLERANCES: dict[tuple[str, str], float] = {
    # float64: torch and TensorFlow agreed with the loop reference to ~1e-14 here; 1e-10 leaves
    # four orders of margin while every convention bug in design.md shows up at 1e-4 or more.
    ("float64", "default"): 1e-10,
    # float32, element-wise ops and short sums (pool windows, activations, softmax, LRN's
    # channel window): a few ulps of float32 (eps = 1.2e-7) relative to the largest value.
    ("float32", "default"): 2e-6,
    # float32 long reductions (conv dw/db summed over N*OH*OW, linear dw, batch-norm statistics,
    # losses averaged over the batch): summation order differs between oneDNN/Eigen builds and
    # NumPy's pairwise sum; ~5e-6 relative was seen between builds, so allow 4x that.
    ("float32", "reduction"): 2e-5,
}

# Outputs that are long reductions, per op (the rest use "default").
REDUCTIONS: dict[str, frozenset[str]] = {
    "conv2d": frozenset({"y", "dx", "dw", "db"}),
    "linear": frozenset({"y", "dw", "db"}),
    "batchnorm": frozenset({"y", "dx", "dgamma", "dbeta", "running_mean", "running_var"}),
    "softmax_cross_entropy": frozenset({"loss"}),
    "mse": frozenset({"loss"}),
    "l2_regularization": frozenset({"loss"}),
}


def tolerance(dtype: str | np.dtype, op: str, output: str) -> float:
    """The tolerance for output ``output`` of ``op`` computed in ``dtype``."""
    dtype = np.dtype(dtype).name
    if dtype == "float64":
        return TOLERANCES[("float64", "default")]
    kind = "reduction" if output in REDUCTIONS.get(op, ()) else "default"
    return TOLERANCES[(dtype, kind)]


def normalized_error(got: np.ndarray, expected: np.ndarray) -> float:
    """max|got - expected| / max|expected| (the absolute error when expected is all zero)."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise AssertionError(f"shape {got.shape} != expected shape {expected.shape}")
    if expected.size == 0:
        return 0.0
    diff = float(np.max(np.abs(got - expected)))
    scale = float(np.max(np.abs(expected)))
    return diff / scale if scale > 0 else diff
