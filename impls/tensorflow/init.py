"""Initialisers with keras.initializers. Same contract as impls/numpy/init.py.

Keras draws in its own layouts -- conv kernels (kH, kW, C_in, C_out), dense kernels (in, out)
-- with the same fan counts as PyTorch; the result is transposed to the canonical layout here.
Unlike PyTorch and the canonical NumPy draws, Keras' HeNormal, GlorotNormal and LecunNormal are
TRUNCATED normals (VarianceScaling with distribution="truncated_normal": cut at two standard
deviations of the untruncated normal, whose std is scaled by 1 / 0.87962566 so that the
truncated one still has the intended std). ``truncated_normal(STD)`` is Keras'
TruncatedNormal(stddev=STD), cut at 2 STD and NOT rescaled (std about 0.88 STD), as the
canonical draw and tf.random.truncated_normal.
"""

from __future__ import annotations

import keras
import numpy as np

from impls import _checks

INITIALIZERS = _checks.INITIALIZERS


def _std(name: str) -> float:
    """STD of "normal(STD)" / "truncated_normal(STD)" (the checker has accepted the name)."""
    return float(name[name.index("(") + 1:-1])


def _keras_initializer(name: str, seed: int) -> keras.initializers.Initializer:
    if name == "he_normal":
        return keras.initializers.HeNormal(seed=seed)
    if name == "xavier_normal":
        return keras.initializers.GlorotNormal(seed=seed)
    if name == "xavier_uniform":
        return keras.initializers.GlorotUniform(seed=seed)
    if name == "lecun_normal":
        return keras.initializers.LecunNormal(seed=seed)
    if name.startswith("truncated_normal("):
        return keras.initializers.TruncatedNormal(stddev=_std(name), seed=seed)
    return keras.initializers.RandomNormal(stddev=_std(name), seed=seed)


def initialize(name: str, shape: tuple[int, ...], seed: int = 0,
               dtype: str = "float32") -> np.ndarray:
    """One array drawn by keras.initializers, returned in the canonical layout."""
    shape = _checks.initialize(name, shape, seed, dtype)
    # canonical (out, in, *kernel) -> Keras (*kernel, in, out), and back after drawing
    keras_shape = (*shape[2:], shape[1], shape[0])
    values = np.asarray(_keras_initializer(name, seed)(keras_shape, dtype=str(dtype)))
    ndim = len(shape)
    return np.ascontiguousarray(values.transpose(ndim - 1, ndim - 2, *range(ndim - 2)))
