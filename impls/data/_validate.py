"""Argument checks for the data package: each names the argument, what it got and what it expected.

The op checkers in impls/_checks.py cover floats and booleans; the data package adds integers
with bounds, paths, shapes and arrays of any dtype.
"""

from __future__ import annotations

import numbers
import os
from pathlib import Path

import numpy as np

from .._checks import boolean, describe, real

__all__ = ["array", "boolean", "describe", "directory", "integer", "optional_integer", "real",
           "shape"]


def integer(name: str, value: object, minimum: int | None = None,
            maximum: int | None = None) -> int:
    """An int (not a bool) in [minimum, maximum]; either bound may be None."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: got {describe(value)}, expected an integer")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        if maximum is None:
            want = f"an integer >= {minimum}"
        elif minimum is None:
            want = f"an integer <= {maximum}"
        else:
            want = f"an integer in [{minimum}, {maximum}]"
        raise ValueError(f"{name}: got {value}, expected {want}")
    return int(value)


def optional_integer(name: str, value: object, minimum: int | None = None) -> int | None:
    return None if value is None else integer(name, value, minimum)


def directory(name: str, value: object) -> Path | None:
    """None, or a str / os.PathLike turned into a Path (existence is checked by the loader)."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name}: got {describe(value)}, expected a path (str or os.PathLike) "
                        "or None")
    return Path(value).expanduser()


def shape(name: str, value: object, ndim: int) -> tuple[int, ...]:
    """A tuple or list of ``ndim`` positive integers."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: got {describe(value)}, expected a tuple of {ndim} positive "
                        "integers")
    if len(value) != ndim:
        raise ValueError(f"{name}: got {tuple(value)!r} with {len(value)} entries, expected "
                         f"{ndim} positive integers")
    return tuple(integer(name, v, 1) for v in value)


def array(name: str, value: object) -> np.ndarray:
    """An ndarray with at least one dimension (the sample axis)."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: got {describe(value)}, expected a NumPy array (np.ndarray)")
    if value.ndim == 0:
        raise ValueError(f"{name}: got a 0-d array, expected at least 1 dimension (N, ...)")
    return value
