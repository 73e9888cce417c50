"""Initialisers, drawn in NumPy: the canonical ones every backend's models start from.

``initialize(name, shape, seed=0, dtype="float32")`` draws one weight array of ``shape`` in the
canonical layout (conv ``(C_out, C_in, kH, kW)``, linear ``(out, in)``):

- ``he_normal``: normal, std sqrt(2 / fan_in)
- ``xavier_normal``: normal, std sqrt(2 / (fan_in + fan_out))
- ``xavier_uniform``: uniform in +-sqrt(6 / (fan_in + fan_out))
- ``lecun_normal``: normal, std sqrt(1 / fan_in) (the "Xavier" of "Deep Learning from Scratch")
- ``normal(STD)``: normal, std STD
- ``truncated_normal(STD)``: normal, std STD, every value beyond 2 STD redrawn (as
  ``tf.random.truncated_normal``; its own std is about 0.88 STD)

Only ``truncated_normal(STD)`` is truncated; a conv's fans include its kernel (fan_in = C_in kH
kW, fan_out = C_out kH kW), as PyTorch and Keras count them. The torch and TensorFlow backends'
``initialize`` draw the same distributions with the framework's own initialisers, except that
Keras truncates its He, Glorot and LeCun normals (README, "Initialisers").
"""

from __future__ import annotations

import numpy as np

from impls import _checks
from reference.models import draw

INITIALIZERS = _checks.INITIALIZERS


def initialize(name: str, shape: tuple[int, ...], seed: int = 0,
               dtype: str = "float32") -> np.ndarray:
    """One array drawn with initialiser ``name`` (see the module docstring)."""
    shape = _checks.initialize(name, shape, seed, dtype)
    return draw(name, shape, np.random.default_rng(seed)).astype(dtype)
