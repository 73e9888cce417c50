"""Initialisers: each framework's own, checked statistically against the canonical ones.

Element-wise equality is impossible (three RNGs), so each draw is checked for its standard
deviation, mean, bounds and tails on a large array -- which tells the conventions apart: fans
that forget the kernel are off by a factor of 3 (3x3 kernels); a normal truncated at two
standard deviations never passes them, while a plain normal does 4.55% of the time; and the
fraction beyond one standard deviation (31.7% plain, 28.5% truncated at two) tells a truncation
at two from one further out.
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
TWO = math.erf(2 / math.sqrt(2))  # P(|z| < 2) of a standard normal, 0.9545
DTYPES = ("float64", "float32")


def _fans(shape):
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


# Keras' HeNormal, GlorotNormal and LecunNormal are VarianceScaling(distribution=
# "truncated_normal"): cut at two std of a parent normal whose std is the target over 0.8796
KERAS_TRUNCATED = ("he_normal", "xavier_normal", "lecun_normal")


def _normal_parent(framework, name, shape):
    """(std of the parent normal, cut-off in parent stds: inf when not truncated), for the
    normals; None for the uniform."""
    fan_in, fan_out = _fans(shape)
    target = {"he_normal": math.sqrt(2 / fan_in),
              "xavier_normal": math.sqrt(2 / (fan_in + fan_out)),
              "lecun_normal": math.sqrt(1 / fan_in),
              "normal(0.05)": 0.05, "truncated_normal(0.05)": 0.05}.get(name)
    if target is None:
        return None
    if name.startswith("truncated_normal("):
        return target, 2.0  # cut at 2 STD, not rescaled: its own std is 0.88 STD
    if framework == "tensorflow" and name in KERAS_TRUNCATED:
        return target / KERAS_TRUNCATION_SCALE, 2.0
    return target, math.inf


def _beyond(t, cut):
    """P(|z| > t) for a standard normal truncated to |z| <= cut."""
    inside = 1.0 if math.isinf(cut) else math.erf(cut / math.sqrt(2))
    return (inside - math.erf(t / math.sqrt(2))) / inside if t < cut else 0.0


NAMES = ("he_normal", "xavier_normal", "xavier_uniform", "lecun_normal", "normal(0.05)",
         "truncated_normal(0.05)")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", (CONV, LINEAR), ids=("conv", "linear"))
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("framework", impls.BACKENDS)
def test_initializer_statistics(framework, name, shape, dtype):
    backend = load_or_skip(framework)
    w = backend.initialize(name, shape, seed=1, dtype=dtype)
    assert w.shape == shape and w.dtype == np.dtype(dtype)
    w64 = w.astype(np.float64)
    top = np.abs(w).max()  # in w's dtype: a bound is compared as the framework rounds it
    parent = _normal_parent(framework, name, shape)
    if parent is None:  # xavier_uniform: U(+-limit)
        limit = math.sqrt(6 / sum(_fans(shape)))
        std = limit / math.sqrt(3)
        assert top <= np.asarray(limit, dtype)
        assert top > 0.99 * limit  # uniform up to the limit
    else:
        sigma, cut = parent
        std = sigma * (KERAS_TRUNCATION_SCALE if cut == 2.0 else 1.0)
        if cut == 2.0:
            assert top <= np.asarray(2 * sigma, dtype)  # never beyond the cut
            assert top > 0.99 * 2 * sigma  # and up to it: a cut further in would show
        # the tails: 31.7% / 4.55% beyond 1 / 2 parent stds for a plain normal, 28.5% / 0
        # truncated at two (~150k samples: a standard error of 0.0017 at most)
        for t in (1.0, 2.0):
            assert np.mean(np.abs(w64) > t * sigma) == pytest.approx(_beyond(t, cut), abs=0.007)
    # 70k+ samples: the sample std is within ~0.5% of the true one; 3% flags a wrong fan
    assert w64.std() == pytest.approx(std, rel=0.03)
    assert abs(w64.mean()) < 0.02 * std


@pytest.mark.parametrize("name", ("lecun_normal", "truncated_normal(0.05)", "normal(0.05)"))
def test_numpy_initializer_is_the_canonical_draw(name):
    from reference.models import draw

    w = impls.load("numpy").initialize(name, CONV, seed=7, dtype="float64")
    np.testing.assert_array_equal(w, draw(name, CONV, np.random.default_rng(7)))


def test_canonical_truncated_normal_redraws_beyond_two_std():
    from reference.models import truncated_normal

    values = truncated_normal(np.random.default_rng(0), 0.5, (200_000,))
    assert np.abs(values).max() <= 1.0
    assert values.std() == pytest.approx(0.5 * KERAS_TRUNCATION_SCALE, rel=0.01)
    # redrawn, not clipped: the last 1% before the cut holds 0.23%, not a clip's 4.55%
    assert np.mean(np.abs(values) > 0.99) == pytest.approx(_beyond(1.98, 2.0), abs=0.0006)


def test_torch_trunc_normal_cutoffs_are_values_not_stds():
    """nn.init.trunc_normal_(t, mean, std, a, b): a and b are absolute bounds. With their
    defaults (-2, 2) a normal of std 0.05 is cut at 40 std, i.e. not truncated; impls/torch/
    init.py passes -2 std and 2 std. If PyTorch ever makes them relative, this fails."""
    torch = pytest.importorskip("torch", reason="torch not installed")
    from torch import nn

    t = torch.empty(200_000, dtype=torch.float64)
    nn.init.trunc_normal_(t, 0.0, 0.05, generator=torch.Generator().manual_seed(0))
    assert float((t.abs() > 0.1).double().mean()) == pytest.approx(1 - TWO, abs=0.003)
    nn.init.trunc_normal_(t, 0.0, 0.05, -0.1, 0.1, generator=torch.Generator().manual_seed(0))
    assert float(t.abs().max()) <= 0.1
    # and LeCun normal through kaiming_normal_: nonlinearity "linear" has gain 1
    assert nn.init.calculate_gain("linear") == 1


def test_keras_he_glorot_lecun_normals_are_truncated():
    """Keras' He, Glorot and LeCun normals are truncated (README, "Initialisers"); its
    TruncatedNormal is cut at 2 stddev and not rescaled. If Keras changes either, this fails
    and the README and impls/tensorflow/init.py must say so."""
    load_or_skip("tensorflow")
    import keras

    for cls in (keras.initializers.HeNormal, keras.initializers.GlorotNormal,
                keras.initializers.LecunNormal):
        init = cls(seed=0)
        assert init.distribution == "truncated_normal", cls.__name__
    w = np.asarray(keras.initializers.LecunNormal(seed=0)((400, 500), dtype="float64"))
    sigma = math.sqrt(1 / 400) / KERAS_TRUNCATION_SCALE  # fan_in of a (in, out) kernel: 400
    assert np.abs(w).max() <= 2 * sigma
    assert w.std() == pytest.approx(math.sqrt(1 / 400), rel=0.02)
    w = np.asarray(keras.initializers.TruncatedNormal(stddev=0.5, seed=0)((200_000,),
                                                                           dtype="float64"))
    assert np.abs(w).max() <= 1.0
    assert w.std() == pytest.approx(0.5 * KERAS_TRUNCATION_SCALE, rel=0.01)


@pytest.mark.parametrize("name", ("he_normal", "lecun_normal", "truncated_normal(0.05)"))
@pytest.mark.parametrize("framework", impls.BACKENDS)
def test_initializer_is_seeded_and_keeps_dtype(framework, name):
    backend = load_or_skip(framework)
    a = backend.initialize(name, LINEAR, seed=3)
    b = backend.initialize(name, LINEAR, seed=3)
    c = backend.initialize(name, LINEAR, seed=4)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


EXPECTED_NAMES = ("expected one of he_normal, xavier_normal, xavier_uniform, lecun_normal, "
                  "normal(STD), truncated_normal(STD) (STD finite and > 0)")


@pytest.mark.parametrize("framework", impls.BACKENDS)
@pytest.mark.parametrize("args,exc,fragment", [
    (("glorot", (3, 3)), ValueError, "name: got 'glorot', " + EXPECTED_NAMES),
    (("normal(-1)", (3, 3)), ValueError, "name: got 'normal(-1)'"),
    (("lecun_uniform", (3, 3)), ValueError, "name: got 'lecun_uniform', " + EXPECTED_NAMES),
    (("truncated_normal", (3, 3)), ValueError, "name: got 'truncated_normal', "),
    (("truncated_normal()", (3, 3)), ValueError, "name: got 'truncated_normal()', "),
    (("truncated_normal(0)", (3, 3)), ValueError, "name: got 'truncated_normal(0)', "),
    (("truncated_normal(-0.1)", (3, 3)), ValueError, "name: got 'truncated_normal(-0.1)', "),
    (("truncated_normal(nan)", (3, 3)), ValueError, "name: got 'truncated_normal(nan)', "),
    (("truncated_normal(inf)", (3, 3)), ValueError, "name: got 'truncated_normal(inf)', "),
    (("truncated(0.05)", (3, 3)), ValueError, "name: got 'truncated(0.05)', "),
    ((None, (3, 3)), ValueError, "name: got None, "),
    (("he_normal", (3,)), ValueError, "shape: got (3,)"),
    (("he_normal", (3, 0)), ValueError, "shape: got (3, 0)"),
    (("lecun_normal", (3, 3), 0, "float16"), ValueError, "dtype: got 'float16'"),
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
