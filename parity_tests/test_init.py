"""Initialisers: each framework's own, checked statistically against the canonical ones.

Element-wise equality is impossible (three RNGs), so each draw is checked for its standard
deviation, mean and bounds on a large array -- which tells the conventions apart: fans that
forget the kernel are off by a factor of 3 (3x3 kernels), and a truncated normal never passes
two standard deviations of its untruncated parent, while a plain normal does about 4.6% of the
time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import impls
from parity_tests.conftest import load_or_skip

CONV = (128, 64, 3, 3)  # fan_in 576, fan_out 1152
LINEAR = (300, 500)  # fan_in 500, fan_out 300
KERAS_TRUNCATION_SCALE = 0.87962566103423978  # Keras: std of a normal truncated at +-2


def _fans(shape):
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def _expected_std(name, shape):
    fan_in, fan_out = _fans(shape)
    return {"he_normal": math.sqrt(2 / fan_in),
            "xavier_normal": math.sqrt(2 / (fan_in + fan_out)),
            "xavier_uniform": math.sqrt(2 / (fan_in + fan_out)),  # limit / sqrt(3)
            "normal(0.05)": 0.05}[name]


NAMES = ("he_normal", "xavier_normal", "xavier_uniform", "normal(0.05)")


@pytest.mark.parametrize("shape", (CONV, LINEAR), ids=("conv", "linear"))
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("framework", impls.BACKENDS)
def test_initializer_statistics(framework, name, shape):
    backend = load_or_skip(framework)
    w = backend.initialize(name, shape, seed=1, dtype="float64")
    assert w.shape == shape and w.dtype == np.float64
    std = _expected_std(name, shape)
    # 100k+ samples: the sample std is within ~0.5% of the true one; 3% flags a wrong fan
    assert w.std() == pytest.approx(std, rel=0.03)
    assert abs(w.mean()) < 0.02 * std
    if name == "xavier_uniform":
        limit = math.sqrt(3) * std
        assert np.abs(w).max() <= limit
        assert np.abs(w).max() > 0.99 * limit  # uniform up to the limit
    beyond_two = float(np.mean(np.abs(w) > 2 * std))
    truncated = framework == "tensorflow" and name in ("he_normal", "xavier_normal")
    if truncated:
        assert np.abs(w).max() <= 2 * std / KERAS_TRUNCATION_SCALE
    elif name != "xavier_uniform":
        assert beyond_two == pytest.approx(0.0455, abs=0.005)  # a plain normal's tails


@pytest.mark.parametrize("framework", impls.BACKENDS)
def test_initializer_is_seeded_and_keeps_dtype(framework):
    backend = load_or_skip(framework)
    a = backend.initialize("he_normal", LINEAR, seed=3)
    b = backend.initialize("he_normal", LINEAR, seed=3)
    c = backend.initialize("he_normal", LINEAR, seed=4)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("framework", impls.BACKENDS)
@pytest.mark.parametrize("args,exc,fragment", [
    (("glorot", (3, 3)), ValueError, "name: got 'glorot'"),
    (("normal(-1)", (3, 3)), ValueError, "name: got 'normal(-1)'"),
    (("he_normal", (3,)), ValueError, "shape: got (3,)"),
    (("he_normal", (3, 0)), ValueError, "shape: got (3, 0)"),
])
def test_initializer_rejects_bad_input(framework, args, exc, fragment):
    backend = load_or_skip(framework)
    with pytest.raises(exc, match=None) as info:
        backend.initialize(*args)
    assert fragment in str(info.value)


def test_models_start_from_the_canonical_numpy_draw():
    """build_model's weights are the NumPy draw, whatever the framework's own initialisers."""
    from reference.models import initial_weights, resolve

    spec = resolve("simple_cnn", (1, 8, 8), 10, init="he_normal")
    weights = initial_weights(spec, seed=5)
    for name in impls.available():
        model = impls.load(name).build_model("simple_cnn", input_shape=(1, 8, 8),
                                             num_classes=10, seed=5, init="he_normal")
        got = model.get_weights()
        for key, value in weights.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{name} {key}")
