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


def normalized_error(got: np.ndarray, expected: np.ndarray, floor: float = 0.0) -> float:
    """max|got - expected| / max(max|expected|, floor) over the finite entries (the absolute
    error when that scale is zero).

    ``floor`` is the scale of what an output is computed from, for outputs that can cancel to
    far less than their terms (the property tests' floors, test_properties.py ``floors``).

    Non-finite entries must match exactly: NaN where NaN is expected, the same infinity where
    an infinity is; any other difference there is an infinite error.
    """
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise AssertionError(f"shape {got.shape} != expected shape {expected.shape}")
    if expected.size == 0:
        return 0.0
    finite = np.isfinite(expected)
    if not finite.all():
        nan = np.isnan(expected)
        if not (np.array_equal(np.isnan(got), nan)
                and np.array_equal(got[~finite & ~nan], expected[~finite & ~nan])):
            return float("inf")
        got, expected = got[finite], expected[finite]
        if expected.size == 0:
            return 0.0
    if not np.isfinite(got).all():
        return float("inf")
    diff = float(np.max(np.abs(got - expected)))
    scale = max(float(np.max(np.abs(expected))), floor)
    return diff / scale if scale > 0 else diff


def assert_outputs_match(got: dict, expected: dict, op: str, dtype: str,
                         check_dtype: bool = True, floors: dict | None = None) -> None:
    """Every output of ``op`` by name: the same names, NumPy arrays, of ``dtype``, within the
    tolerance of that output (the one helper of the op parity and property tests).
    ``floors``: output name -> the scale floor of ``normalized_error``."""
    assert sorted(got) == sorted(expected), f"outputs {sorted(got)} != {sorted(expected)}"
    failures = []
    for key, want in expected.items():
        have = got[key]
        assert isinstance(have, (np.ndarray, np.generic)), (
            f"{key}: got {type(have).__name__}, expected a NumPy array")
        if check_dtype:
            assert np.asarray(have).dtype == np.dtype(dtype), (
                f"{key}: dtype {np.asarray(have).dtype}, expected {dtype}")
        err = normalized_error(have, want, (floors or {}).get(key, 0.0))
        tol = tolerance(dtype, op, key)
        if not err <= tol:
            failures.append(f"{key}: normalised error {err:.3g} > tolerance {tol:.3g}")
    assert not failures, "; ".join(failures)
