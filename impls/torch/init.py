"""Initialisers with torch.nn.init. Same contract as impls/numpy/init.py.

The draws come from ``torch.nn.init`` with a seeded ``torch.Generator``: the same distributions
as the canonical NumPy ones (only ``truncated_normal(STD)`` truncated; fans include the
kernel), not the same numbers. PyTorch's own layer default (kaiming_uniform with a=sqrt(5)) is
none of these.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from impls import _checks

INITIALIZERS = _checks.INITIALIZERS


def _std(name: str) -> float:
    """STD of "normal(STD)" / "truncated_normal(STD)" (the checker has accepted the name)."""
    return float(name[name.index("(") + 1:-1])


def initialize(name: str, shape: tuple[int, ...], seed: int = 0,
               dtype: str = "float32") -> np.ndarray:
    """One array drawn by torch.nn.init (canonical layout = PyTorch's own)."""
    shape = _checks.initialize(name, shape, seed, dtype)
    generator = torch.Generator().manual_seed(seed)
    t = torch.empty(shape, dtype=getattr(torch, str(dtype)))
    if name == "he_normal":
        nn.init.kaiming_normal_(t, mode="fan_in", nonlinearity="relu", generator=generator)
    elif name == "lecun_normal":
        # LeCun normal is Kaiming's with gain 1: calculate_gain("linear") = 1, so std =
        # 1 / sqrt(fan_in) (torch has no lecun_normal_ of its own)
        nn.init.kaiming_normal_(t, mode="fan_in", nonlinearity="linear", generator=generator)
    elif name == "xavier_normal":
        nn.init.xavier_normal_(t, generator=generator)
    elif name == "xavier_uniform":
        nn.init.xavier_uniform_(t, generator=generator)
    elif name.startswith("truncated_normal("):
        # trunc_normal_'s cut-offs a and b are VALUES, not multiples of std: its defaults
        # (-2, 2) cut a normal of std 0.05 at 40 std, i.e. not at all. The cut at 2 std of
        # tf.random.truncated_normal is asked for explicitly (test_init.py pins both).
        std = _std(name)
        nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std, generator=generator)
    else:
        nn.init.normal_(t, 0.0, _std(name), generator=generator)
    return t.numpy()
