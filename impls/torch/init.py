"""Initialisers with torch.nn.init. Same contract as impls/numpy/init.py.

The draws come from ``torch.nn.init`` with a seeded ``torch.Generator``: the same distributions
as the canonical NumPy ones (none truncated; fans include the kernel), not the same numbers.
PyTorch's own layer default (kaiming_uniform with a=sqrt(5)) is none of these.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from impls import _checks

INITIALIZERS = _checks.INITIALIZERS


def initialize(name: str, shape: tuple[int, ...], seed: int = 0,
               dtype: str = "float32") -> np.ndarray:
    """One array drawn by torch.nn.init (canonical layout = PyTorch's own)."""
    shape = _checks.initialize(name, shape, seed, dtype)
    generator = torch.Generator().manual_seed(seed)
    t = torch.empty(shape, dtype=getattr(torch, str(dtype)))
    if name == "he_normal":
        nn.init.kaiming_normal_(t, mode="fan_in", nonlinearity="relu", generator=generator)
    elif name == "xavier_normal":
        nn.init.xavier_normal_(t, generator=generator)
    elif name == "xavier_uniform":
        nn.init.xavier_uniform_(t, generator=generator)
    else:
        nn.init.normal_(t, 0.0, float(name[7:-1]), generator=generator)
    return t.numpy()
