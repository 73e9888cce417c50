"""The reference checked on its own: before it judges the backends, it must be right.

(a) every backward of reference/ops.py against central differences (reference/gradcheck.py),
    on small float64 inputs that are tie-free and away from kinks, over several geometries;
(b) every known-answer vector (reference/vectors/*.json) reproduced within its tolerance, and
    every tutorial bug recorded there reproduced by its stated explanation;
(c) exact values where the derivative does not exist (ReLU at 0, tied maxima) and the
    reference's other promises (float64 out, no mutation, no RNG).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from reference import gradcheck, ops, vectors

# A correct float64 backward scores ~1e-9 against central differences with eps 1e-6 (see
# reference/gradcheck.py); any real mistake scores 1e-3 or more.
GRAD_TOL = 1e-7


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _normal(shape, seed=0):
    return _rng(seed).standard_normal(shape)


def _distinct(shape, seed=0):
    """A random permutation of 0.1, 0.2, ...: max-pool windows without ties (gaps >> eps)."""
    size = int(np.prod(shape))
    return (_rng(seed).permutation(size) * 0.1 - 0.05 * size).reshape(shape)


def _away_from_zero(shape, seed=0):
    """|x| in [0.1, 1.1]: ReLU's kink is never within eps."""
    rng = _rng(seed)
    return rng.choice([-1.0, 1.0], size=shape) * (0.1 + rng.random(shape))


# ---------------------------------------------------------------------------------------------
# (a) gradient checks: forward/backward pairs
#
# Each case: (forward, backward, make_inputs, wrt). make_inputs builds the arrays at run time
# so that collection stays cheap; wrt names what backward returns, in order.


def _conv(stride, padding, x_shape=(2, 2, 5, 5), w_shape=(3, 2, 3, 3)):
    return (lambda x, w, b: ops.conv2d_forward(x, w, b, stride, padding), ops.conv2d_backward,
            lambda: {"x": _normal(x_shape, 1), "w": _normal(w_shape, 2),
                     "b": _normal(w_shape[:1], 3)}, None)


def _max_pool(kernel, stride, padding, x_shape=(2, 2, 5, 5)):
    return (lambda x: ops.max_pool2d_forward(x, kernel, stride, padding),
            ops.max_pool2d_backward, lambda: {"x": _distinct(x_shape, 4)}, None)


def _avg_pool(kernel, stride, padding, include, x_shape=(2, 2, 5, 5)):
    return (lambda x: ops.avg_pool2d_forward(x, kernel, stride, padding, include),
            ops.avg_pool2d_backward, lambda: {"x": _normal(x_shape, 5)}, None)


def _batchnorm(x_shape, training):
    channels = x_shape[1]

    def forward(x, gamma, beta):
        running_mean = np.linspace(-0.5, 0.5, channels)
        running_var = np.linspace(0.5, 2.0, channels)
        return ops.batchnorm_forward(x, gamma, beta, running_mean, running_var,
                                     training=training, momentum=0.1, eps=1e-5)

    return (forward, ops.batchnorm_backward,
            lambda: {"x": 2 + 3 * _normal(x_shape, 6), "gamma": 1 + _normal(channels, 7),
                     "beta": _normal(channels, 8)}, None)


def _lrn(size, alpha=0.5, beta=0.75, k=1.0):
    # alpha 0.5 (not the default 1e-4) so the cross-channel term matters to the check
    return (lambda x: ops.local_response_norm_forward(x, size, alpha, beta, k),
            ops.local_response_norm_backward, lambda: {"x": _normal((2, 6, 2, 2), 9)}, None)


def _dropout(training):
    mask = (_rng(10).random((3, 4)) < 0.6).astype(np.float64)
    return (lambda x: ops.dropout_forward(x, 0.4, training=training, mask=mask),
            ops.dropout_backward, lambda: {"x": _normal((3, 4), 11)}, None)


PAIR_CASES = {
    "conv2d 3x3 stride 1 no padding": _conv(1, 0),
    "conv2d 3x3 stride 2 padding 1": _conv(2, 1),
    "conv2d 2x3 stride 3 asymmetric padding": _conv(
        3, ((0, 2), (1, 0)), x_shape=(2, 2, 6, 7), w_shape=(2, 2, 2, 3)),
    "conv2d stride (1, 2) padding same": _conv((1, 2), "same", x_shape=(1, 2, 5, 6)),
    "conv2d stride 2 same on even size (odd pad bottom right)": _conv(
        2, "same", x_shape=(1, 2, 6, 6)),
    "conv2d 4x4 stride 3 padding same": _conv(3, "same", x_shape=(1, 1, 7, 8),
                                              w_shape=(2, 1, 4, 4)),
    "conv2d padding valid (h, w) pairs": _conv((2, 1), "valid", w_shape=(2, 2, 2, 3)),
    "max_pool2d 2x2 stride 2": _max_pool(2, None, 0, x_shape=(2, 2, 4, 6)),
    "max_pool2d 3x3 stride 1 overlapping": _max_pool(3, 1, 0),
    "max_pool2d 3x3 stride 2 padding 1": _max_pool(3, 2, 1),
    "max_pool2d 2x3 stride (1, 2) asymmetric padding": _max_pool(
        (2, 3), (1, 2), ((0, 1), (1, 1))),
    "max_pool2d 3x3 stride 3 padding same": _max_pool(3, 3, "same", x_shape=(1, 2, 7, 8)),
    "avg_pool2d 2x2 stride 2 with padded cells counted": _avg_pool(2, 2, 1, True),
    "avg_pool2d 3x3 stride 2 padding 1 without padded cells": _avg_pool(3, 2, 1, False),
    "avg_pool2d 3x3 stride 2 padding same without padded cells": _avg_pool(
        3, 2, "same", False, x_shape=(1, 2, 6, 6)),
    "avg_pool2d 2x3 stride (2, 1) asymmetric padding counted": _avg_pool(
        (2, 3), (2, 1), ((1, 0), (0, 1)), True),
    "linear on (N, C, H, W) input": (
        ops.linear_forward, ops.linear_backward,
        lambda: {"x": _normal((3, 2, 2, 2), 12), "w": _normal((4, 8), 13),
                 "b": _normal(4, 14)}, None),
    "relu away from 0": (ops.relu_forward, ops.relu_backward,
                         lambda: {"x": _away_from_zero((3, 5), 15)}, None),
    "sigmoid": (ops.sigmoid_forward, ops.sigmoid_backward,
                lambda: {"x": 3 * _normal((3, 5), 16)}, None),
    "tanh": (ops.tanh_forward, ops.tanh_backward, lambda: {"x": 2 * _normal((3, 5), 17)}, None),
    "flatten": (ops.flatten_forward, ops.flatten_backward,
                lambda: {"x": _normal((2, 3, 2, 2), 18)}, None),
    "softmax": (ops.softmax_forward, ops.softmax_backward,
                lambda: {"x": 3 * _normal((3, 5), 19)}, None),
    "batchnorm (N, D) training": _batchnorm((6, 3), True),
    "batchnorm (N, D) inference": _batchnorm((6, 3), False),
    "batchnorm (N, C, H, W) training": _batchnorm((2, 3, 2, 3), True),
    "batchnorm (N, C, H, W) inference": _batchnorm((2, 3, 2, 3), False),
    "dropout training with mask": _dropout(True),
    "dropout inference": _dropout(False),
    "local_response_norm size 1": _lrn(1),
    "local_response_norm size 2 (even)": _lrn(2),
    "local_response_norm size 3 (odd)": _lrn(3),
    "local_response_norm size 4 (even) beta 1.5 k 2": _lrn(4, beta=1.5, k=2.0),
    "local_response_norm size 5 (odd) default alpha": _lrn(5, alpha=1e-4),
    "local_response_norm size 9 larger than C": _lrn(9),
}


@pytest.mark.parametrize("case", list(PAIR_CASES), ids=list(PAIR_CASES))
def test_backward_matches_central_differences(case):
    forward, backward, make_inputs, wrt = PAIR_CASES[case]
    errors = gradcheck.check_gradients(forward, make_inputs(), backward, wrt=wrt)
    assert max(errors.values()) < GRAD_TOL, errors


@pytest.mark.parametrize("case", list(PAIR_CASES), ids=list(PAIR_CASES))
def test_backward_is_pure_and_repeatable(case):
    forward, backward, make_inputs, _ = PAIR_CASES[case]
    inputs = make_inputs()
    y, cache = forward(**copy.deepcopy(inputs))[:2]
    dy = _normal(y.shape, 20)
    cache_before, dy_before = copy.deepcopy(cache), dy.copy()
    first, second = backward(dy, cache), backward(dy, cache)
    first = first if isinstance(first, tuple) else (first,)
    second = second if isinstance(second, tuple) else (second,)
    for a, b in zip(first, second):
        assert a.dtype == np.float64 and np.array_equal(a, b)
    np.testing.assert_array_equal(dy, dy_before)
    for key, value in cache_before.items():
        np.testing.assert_array_equal(cache[key], value, err_msg=f"cache[{key!r}] changed")


# ---------------------------------------------------------------------------------------------
# (a) gradient checks: losses that return their own gradient


def _probabilities(shape, seed):
    """Soft labels: every class has some probability, rows sum to 1."""
    p = _rng(seed).random(shape) + 0.1
    return p / p.sum(axis=1, keepdims=True)


def _cross_entropy_int():
    labels = np.array([0, 3, 1, 3])
    return (lambda logits: ops.softmax_cross_entropy(logits, labels),
            {"logits": 2 * _normal((4, 5), 21)})


def _cross_entropy_probabilities():
    labels = _probabilities((4, 5), 22)
    return (lambda logits: ops.softmax_cross_entropy(logits, labels),
            {"logits": 2 * _normal((4, 5), 23)})


def _mse():
    target = _normal((3, 2, 2), 24)
    return lambda pred: ops.mse(pred, target), {"pred": _normal((3, 2, 2), 25)}


def _l2(as_dict):
    def loss_fn(a, b):
        weights = {"w1": a, "w2": b} if as_dict else [a, b]
        loss, grads = ops.l2_regularization(weights, 0.3)
        return loss, tuple(grads.values()) if as_dict else tuple(grads)

    return loss_fn, {"a": _normal((3, 2), 26), "b": _normal(4, 27)}


LOSS_CASES = {
    "softmax_cross_entropy integer labels": _cross_entropy_int,
    "softmax_cross_entropy probability labels": _cross_entropy_probabilities,
    "mse": _mse,
    "l2_regularization list": lambda: _l2(False),
    "l2_regularization dict": lambda: _l2(True),
}


@pytest.mark.parametrize("case", list(LOSS_CASES), ids=list(LOSS_CASES))
def test_loss_gradient_matches_central_differences(case):
    loss_fn, inputs = LOSS_CASES[case]()
    errors = gradcheck.check_loss_gradients(loss_fn, inputs)
    assert max(errors.values()) < GRAD_TOL, errors


def test_gradcheck_catches_a_wrong_backward():
    """The checker itself can fail: a backward off by 1 % is flagged."""
    def wrong_backward(dy, cache):
        return 1.01 * ops.tanh_backward(dy, cache)

    errors = gradcheck.check_gradients(ops.tanh_forward, {"x": _normal((3, 4))},
                                       wrong_backward)
    assert errors["x"] > 1e-3


def test_numerical_gradient_of_a_known_function():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    grad = gradcheck.numerical_gradient(lambda v: np.sum(v ** 3), x)
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-9)
    np.testing.assert_array_equal(x, [[1.0, -2.0], [0.5, 3.0]])  # x untouched


# ---------------------------------------------------------------------------------------------
# (b) known-answer vectors

VECTOR_NAMES = vectors.names()
REPRODUCED = [n for n in VECTOR_NAMES if "printed_reproduced_with" in vectors.load(n)]
REQUIRED = ("name", "source", "how", "op", "params", "inputs", "expected", "tolerance", "notes")


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_is_well_formed(name):
    vector = vectors.load(name)
    assert [key for key in REQUIRED if key not in vector] == []
    assert vector["name"] == name
    assert all(vector[key].strip() for key in ("source", "how", "notes"))
    assert vector["op"] == "im2col" or callable(getattr(ops, vector["op"]))
    assert set(vector["tolerance"]) == {"rtol", "atol"}
    assert vector["expected"] and all("value" in check for check in vector["expected"])


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_reference_reproduces_vector(name):
    assert vectors.failures(vectors.load(name), ops) == []


@pytest.mark.parametrize("name", REPRODUCED)
def test_tutorial_bug_explains_printed_value(name):
    """Where a tutorial printed a wrong value, the recorded explanation reproduces it."""
    vector = vectors.load(name)
    inputs = vectors.build_inputs(vector, vector["printed_reproduced_with"]["inputs"])
    assert vectors.failures(vector, ops, field="printed", inputs=inputs) == []
    assert vectors.failures(vector, ops, field="printed") != []  # and the fix matters


def test_vector_check_can_fail():
    """A vector with a corrupted expected value is reported, not silently accepted."""
    vector = copy.deepcopy(vectors.load("hand_conv2d_same_stride2"))
    vector["expected"][0]["value"][0][0][0][0] += 1e-6
    assert len(vectors.failures(vector, ops)) == 1


def test_unknown_vector_name():
    with pytest.raises(ValueError, match="expected one of"):
        vectors.load("no_such_vector")


# ---------------------------------------------------------------------------------------------
# (c) exact values at non-differentiable points and other promises


def test_relu_gradient_at_zero_is_zero():
    x = np.array([[-0.0, 0.0, 1e-300, -1e-300]])
    y, cache = ops.relu_forward(x)
    np.testing.assert_array_equal(y, [[0.0, 0.0, 1e-300, 0.0]])
    np.testing.assert_array_equal(ops.relu_backward(np.ones_like(x), cache),
                                  [[0.0, 0.0, 1.0, 0.0]])


@pytest.mark.parametrize("window, first", [
    pytest.param([[7, 7], [7, 7]], (0, 0), id="four-way tie goes top left"),
    pytest.param([[1, 7], [7, 7]], (0, 1), id="three-way tie goes to the first in row order"),
    pytest.param([[1, 2], [7, 7]], (1, 0), id="tie on the bottom row goes left"),
    pytest.param([[1, 2], [3, 7]], (1, 1), id="unique max"),
])
def test_max_pool_tie_gradient_goes_to_first_max(window, first):
    x = np.array(window, dtype=np.float64).reshape(1, 1, 2, 2)
    y, cache = ops.max_pool2d_forward(x, 2)
    dx = ops.max_pool2d_backward(np.full((1, 1, 1, 1), 3.0), cache)
    expected = np.zeros((1, 1, 2, 2))
    expected[(0, 0) + first] = 3.0
    np.testing.assert_array_equal(dx, expected)
    assert y[0, 0, 0, 0] == np.max(window)


def test_max_pool_padding_never_wins_over_negative_values():
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # all < 0: zero padding would win
    y, _ = ops.max_pool2d_forward(x, 3, stride=1, padding=1)
    np.testing.assert_array_equal(y[0, 0], [[-1, -1, -2], [-1, -1, -2], [-4, -4, -5]])


@pytest.mark.parametrize("size, kernel, stride", [
    (5, 3, 1), (5, 3, 2), (6, 3, 2), (7, 4, 3), (8, 4, 3), (4, 1, 2), (3, 5, 1),
], ids=lambda v: str(v))
def test_same_padding_follows_tensorflow(size, kernel, stride):
    """Output ceil(size / stride); conv with 'same' equals conv with the explicit TF pads."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    pads = ((total // 2, total - total // 2),) * 2
    x, w, b = _normal((1, 1, size, size), 30), _normal((1, 1, kernel, kernel), 31), np.zeros(1)
    y_same, _ = ops.conv2d_forward(x, w, b, stride, "same")
    y_explicit, _ = ops.conv2d_forward(x, w, b, stride, pads)
    assert y_same.shape == (1, 1, out, out)
    np.testing.assert_array_equal(y_same, y_explicit)


def test_softmax_cross_entropy_margin_1000_is_exact():
    loss, dlogits = ops.softmax_cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))
    assert loss == 1000.0 and isinstance(loss, np.float64)
    np.testing.assert_array_equal(dlogits, [[1.0, -1.0]])


def test_dropout_needs_a_mask_when_training():
    x = np.ones((2, 3))
    with pytest.raises(ValueError):
        ops.dropout_forward(x, 0.5, training=True)
    y, _ = ops.dropout_forward(x, 0.0, training=True)  # p = 0 keeps everything
    np.testing.assert_array_equal(y, x)
    y, cache = ops.dropout_forward(x, 0.5, training=False, mask=np.zeros((2, 3)))
    np.testing.assert_array_equal(y, x)  # inference ignores the mask
    np.testing.assert_array_equal(ops.dropout_backward(2 * x, cache), 2 * x)


def test_batchnorm_inference_returns_copies_of_running_statistics():
    mean, var = np.array([0.5, -1.0]), np.array([2.0, 3.0])
    _, _, new_mean, new_var = ops.batchnorm_forward(
        _normal((4, 2)), np.ones(2), np.zeros(2), mean, var, training=False)
    np.testing.assert_array_equal(new_mean, mean)
    np.testing.assert_array_equal(new_var, var)
    assert new_mean is not mean and new_var is not var


def test_l2_regularization_keeps_the_container():
    a, b = np.ones((2, 2)), np.full(3, 2.0)
    for weights, kind in (([a, b], list), ((a, b), list), ({"a": a, "b": b}, dict)):
        loss, grads = ops.l2_regularization(weights, 0.5)
        assert type(grads) is kind and loss == 0.5 * 0.5 * (4 + 12)


def test_float32_inputs_give_float64_outputs():
    x32 = _normal((1, 2, 4, 4)).astype(np.float32)
    w32 = _normal((3, 2, 3, 3)).astype(np.float32)
    y, cache = ops.conv2d_forward(x32, w32, np.zeros(3, np.float32), 1, "same")
    grads = ops.conv2d_backward(np.ones(y.shape, np.float32), cache)
    assert y.dtype == np.float64 and all(g.dtype == np.float64 for g in grads)
    loss, dz = ops.softmax_cross_entropy(x32.reshape(2, 16), np.array([0, 1]))
    assert isinstance(loss, np.float64) and dz.dtype == np.float64
