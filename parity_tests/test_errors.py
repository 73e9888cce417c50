"""Bad input: every public op rejects it before computing, the same way in every backend.

Each row: the call, the exception type, and a fragment of the message (which must name the
argument and what was expected). A second test checks that all backends give the very same
message.
"""

from __future__ import annotations

import numpy as np
import pytest

import impls

f64 = np.float64


def _x(*shape, dtype=f64):
    return np.ones(shape, dtype=dtype)


# (id, function name, args, kwargs, exception, message fragment)
BAD_CALLS = [
    ("conv-channel-mismatch", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 4, 3, 3), _x(2)), {},
     ValueError, "w: got 4 input channels"),
    ("conv-x-3d", "conv2d_forward", (_x(3, 5, 5), _x(2, 3, 3, 3), _x(2)), {},
     ValueError, "x: got 3 dimensions"),
    ("conv-stride-zero", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3), _x(2)),
     {"stride": 0}, ValueError, "stride: got 0, expected an integer >= 1"),
    ("conv-stride-float", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3), _x(2)),
     {"stride": 1.5}, TypeError, "stride: got 1.5, expected an integer"),
    ("conv-kernel-too-large", "conv2d_forward", (_x(1, 3, 4, 4), _x(2, 3, 5, 5), _x(2)), {},
     ValueError, "larger than the padded input height 4"),
    ("conv-bias-length", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3), _x(3)), {},
     ValueError, "b: got shape (3,), expected (2,)"),
    # b = None is a conv without bias (docs/api.md); anything else but an array is refused,
    # and leaving b out is Python's missing argument, not None
    ("conv-bias-length-keyword", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3)),
     {"b": _x(3)}, ValueError, "b: got shape (3,), expected (2,)"),
    ("conv-bias-2d", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3), _x(2, 1)), {},
     ValueError, "b: got 2 dimensions (shape (2, 1)), expected 1"),
    ("conv-bias-list", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3), [0.0, 0.0]), {},
     TypeError, "b: got [0.0, 0.0], expected a NumPy array (np.ndarray) or None (no bias)"),
    ("conv-bias-zero", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3), 0.0), {},
     TypeError, "b: got 0.0, expected a NumPy array (np.ndarray) or None (no bias)"),
    ("conv-bias-dtype", "conv2d_forward",
     (_x(1, 3, 5, 5), _x(2, 3, 3, 3), _x(2, dtype=np.float32)), {},
     TypeError, "b: got dtype float32, expected float64 to match x"),
    ("conv-bias-missing", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3)), {},
     TypeError, "conv2d_forward() missing 1 required positional argument: 'b'"),
    ("conv-padding-word", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3), _x(2)),
     {"padding": "full"}, ValueError, "padding: got 'full', expected 'same', 'valid'"),
    ("conv-negative-padding", "conv2d_forward", (_x(1, 3, 5, 5), _x(2, 3, 3, 3), _x(2)),
     {"padding": -1}, ValueError, "padding: got -1, expected an integer >= 0"),
    ("conv-dtype-mix", "conv2d_forward",
     (_x(1, 3, 5, 5), _x(2, 3, 3, 3, dtype=np.float32), _x(2)), {},
     TypeError, "w: got dtype float32, expected float64 to match x"),
    ("conv-int-input", "conv2d_forward",
     (np.ones((1, 3, 5, 5), dtype=np.int64), _x(2, 3, 3, 3), _x(2)), {},
     TypeError, "x: got dtype int64, expected float32 or float64"),
    ("conv-list-input", "conv2d_forward", ([[1.0]], _x(2, 3, 3, 3), _x(2)), {},
     TypeError, "x: got [[1.0]], expected a NumPy array"),
    ("maxpool-kernel-too-large", "max_pool2d_forward", (_x(1, 1, 3, 3), 4), {},
     ValueError, "kernel_size: got (4, 4)"),
    ("maxpool-kernel-zero", "max_pool2d_forward", (_x(1, 1, 3, 3), 0), {},
     ValueError, "kernel_size: got 0, expected an integer >= 1"),
    ("maxpool-pad-over-half", "max_pool2d_forward", (_x(1, 1, 6, 6), 2), {"padding": 2},
     ValueError, "expected each pad at most half the kernel"),
    ("avgpool-stride-negative", "avg_pool2d_forward", (_x(1, 1, 6, 6), 2), {"stride": -1},
     ValueError, "stride: got -1"),
    ("avgpool-count-include-pad", "avg_pool2d_forward", (_x(1, 1, 6, 6), 2),
     {"count_include_pad": "yes"}, TypeError, "count_include_pad: got 'yes'"),
    ("linear-features", "linear_forward", (_x(2, 3, 2, 2), _x(4, 10), _x(4)), {},
     ValueError, "w: got 10 input features"),
    ("linear-bias", "linear_forward", (_x(2, 6), _x(4, 6), _x(5)), {},
     ValueError, "b: got shape (5,), expected (4,)"),
    ("linear-x-1d", "linear_forward", (_x(6), _x(4, 6), _x(4)), {},
     ValueError, "x: got 1 dimensions"),
    ("relu-not-array", "relu_forward", (3.0,), {}, TypeError, "x: got 3.0"),
    ("softmax-3d", "softmax_forward", (_x(2, 3, 4),), {}, ValueError, "x: got 3 dimensions"),
    ("ce-label-range", "softmax_cross_entropy", (_x(2, 3), np.array([0, 3])), {},
     ValueError, "labels: got values in [0, 3], expected classes in [0, 2]"),
    ("ce-label-negative", "softmax_cross_entropy", (_x(2, 3), np.array([-1, 0])), {},
     ValueError, "labels: got values in [-1, 0]"),
    ("ce-label-count", "softmax_cross_entropy", (_x(2, 3), np.array([0, 1, 2])), {},
     ValueError, "labels: got 3 labels, expected 2"),
    ("ce-label-float-1d", "softmax_cross_entropy", (_x(2, 3), np.array([0.0, 1.0])), {},
     TypeError, "labels: got array of shape (2,) and dtype float64, expected integer"),
    ("ce-probabilities-shape", "softmax_cross_entropy", (_x(2, 3), _x(2, 4)), {},
     ValueError, "labels: got shape (2, 4), expected (2, 3)"),
    ("mse-shape", "mse", (_x(2, 3), _x(3, 2)), {}, ValueError, "target: got shape (3, 2)"),
    # the edges (docs/api.md, "Edges"): a mean over nothing, a softmax over no class
    ("ce-empty-batch", "softmax_cross_entropy", (_x(0, 5), np.zeros(0, dtype=np.int64)), {},
     ValueError, "logits: got an empty batch of shape (0, 5), expected at least one example "
     "(the mean over no examples is undefined)"),
    ("ce-no-classes", "softmax_cross_entropy", (_x(2, 0), np.zeros(2, dtype=np.int64)), {},
     ValueError, "logits: got shape (2, 0) with no classes, expected at least one class "
     "(K >= 1)"),
    ("softmax-no-classes", "softmax_forward", (_x(2, 0),), {}, ValueError,
     "x: got shape (2, 0) with no classes, expected at least one class (K >= 1)"),
    ("mse-empty", "mse", (_x(0, 3), _x(0, 3)), {}, ValueError,
     "pred: got an empty array of shape (0, 3), expected at least one element (the mean over "
     "no elements is undefined)"),
    ("bn-gamma-length", "batchnorm_forward", (_x(4, 3), _x(2), _x(3), _x(3), _x(3)), {},
     ValueError, "gamma: got shape (2,), expected (3,)"),
    ("bn-momentum", "batchnorm_forward", (_x(4, 3), _x(3), _x(3), _x(3), _x(3)),
     {"momentum": 1.5}, ValueError, "momentum: got 1.5, expected a finite number in [0, 1]"),
    ("bn-eps", "batchnorm_forward", (_x(4, 3), _x(3), _x(3), _x(3), _x(3)), {"eps": 0.0},
     ValueError, "eps: got 0.0"),
    ("bn-one-value", "batchnorm_forward", (_x(1, 3), _x(3), _x(3), _x(3), _x(3)), {},
     ValueError, "expected more than 1 when training"),
    ("bn-train-empty-batch", "batchnorm_forward",
     (_x(0, 3, 2, 2), _x(3), _x(3), _x(3), _x(3)), {}, ValueError,
     "x: got shape (0, 3, 2, 2) with 0 values per channel, expected more than 1 when training "
     "(the unbiased variance needs two)"),
    ("bn-train-one-pixel", "batchnorm_forward", (_x(1, 3, 1, 1), _x(3), _x(3), _x(3), _x(3)),
     {}, ValueError, "x: got shape (1, 3, 1, 1) with 1 value per channel, expected more than 1"),
    ("bn-3d", "batchnorm_forward", (_x(4, 3, 2), _x(3), _x(3), _x(3), _x(3)), {},
     ValueError, "x: got 3 dimensions"),
    ("dropout-p-one", "dropout_forward", (_x(2, 3), 1.0), {}, ValueError,
     "p: got 1.0, expected a finite number in [0, 1)"),
    ("dropout-p-negative", "dropout_forward", (_x(2, 3), -0.1), {}, ValueError, "p: got -0.1"),
    ("dropout-mask-shape", "dropout_forward", (_x(2, 3), 0.5), {"mask": _x(3, 2)},
     ValueError, "mask: got shape (3, 2), expected (2, 3)"),
    ("dropout-mask-values", "dropout_forward", (_x(2, 3), 0.5), {"mask": _x(2, 3) * 2},
     ValueError, "mask: got values other than 0 and 1"),
    ("lrn-size-zero", "local_response_norm_forward", (_x(1, 3, 2, 2), 0), {}, ValueError,
     "size: got 0, expected an integer >= 1"),
    ("lrn-2d", "local_response_norm_forward", (_x(2, 3), 3), {}, ValueError,
     "x: got 2 dimensions"),
    ("l2-negative", "l2_regularization", ([_x(2, 2)], -0.1), {}, ValueError,
     "weight_decay: got -0.1"),
    ("l2-not-container", "l2_regularization", (_x(2, 2), 0.1), {}, TypeError,
     "weights: got array of shape (2, 2)"),
]


def _call(backend, name, args, kwargs):
    return getattr(backend, name)(*args, **kwargs)


@pytest.mark.parametrize("row", BAD_CALLS, ids=[row[0] for row in BAD_CALLS])
def test_bad_input_is_rejected(backend, row):
    _, name, args, kwargs, exc, fragment = row
    with pytest.raises(exc) as info:
        _call(backend, name, args, kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize("row", BAD_CALLS, ids=[row[0] for row in BAD_CALLS])
def test_every_backend_gives_the_same_message(row):
    _, name, args, kwargs, exc, _ = row
    messages = {}
    for backend_name in impls.available():
        with pytest.raises(exc) as info:
            _call(impls.load(backend_name), name, args, kwargs)
        messages[backend_name] = str(info.value)
    if len(messages) < 2:
        pytest.skip(f"only {list(messages)} installed: nothing to compare")
    assert len(set(messages.values())) == 1, messages


# Backward: a cache from another op, a dy of the wrong shape or dtype.
BAD_BACKWARD = [
    ("wrong-cache", "relu_backward", lambda B: (_x(2, 3), B.sigmoid_forward(_x(2, 3))[1]),
     TypeError, "cache: got a cache from sigmoid_forward, expected the cache returned by "
     "relu_forward"),
    ("not-a-cache", "conv2d_backward", lambda B: (_x(1, 2, 3, 3), {"x": 1}),
     TypeError, "cache: got {'x': 1}, expected the cache returned by conv2d_forward"),
    ("dy-shape", "conv2d_backward",
     lambda B: (_x(1, 2, 4, 4), B.conv2d_forward(_x(1, 3, 5, 5), _x(2, 3, 3, 3), _x(2))[1]),
     ValueError, "dy: got shape (1, 2, 4, 4), expected (1, 2, 3, 3)"),
    ("dy-dtype", "max_pool2d_backward",
     lambda B: (_x(1, 1, 2, 2, dtype=np.float32), B.max_pool2d_forward(_x(1, 1, 4, 4), 2)[1]),
     TypeError, "dy: got dtype float32, expected float64"),
]


@pytest.mark.parametrize("row", BAD_BACKWARD, ids=[row[0] for row in BAD_BACKWARD])
def test_bad_backward_input_is_rejected(backend, row):
    _, name, make, exc, fragment = row
    with pytest.raises(exc) as info:
        getattr(backend, name)(*make(backend))
    assert fragment in str(info.value)


def test_load_rejects_unknown_backend():
    with pytest.raises(ValueError, match="name: got 'jax', expected one of numpy, torch"):
        impls.load("jax")


def test_available_lists_numpy_first():
    assert impls.available()[0] == "numpy"
    assert set(impls.available()) <= set(impls.BACKENDS)


# Optimizer and initialiser arguments: checked in impls/_checks.py, so identical everywhere.
BAD_OPTIMIZERS = [
    ("unknown-name", ("adamw",), {}, ValueError, "name: got 'adamw', expected one of sgd"),
    ("lr-zero", ("sgd",), {"lr": 0.0}, ValueError, "lr: got 0.0"),
    ("unknown-hyper", ("sgd",), {"momentum": 0.9}, TypeError,
     "hyperparameters: got ['momentum'] for the sgd optimizer"),
    ("betas-twice", ("adam",), {"betas": (0.9, 0.99), "beta1": 0.9}, TypeError, "betas: got"),
    ("beta-range", ("adam",), {"betas": (0.9, 1.0)}, ValueError, "betas: got 1.0"),
    ("eps-zero", ("rmsprop",), {"eps": 0.0}, ValueError, "eps: got 0.0"),
    ("nesterov-no-momentum", ("nesterov",), {"momentum": 0.0}, ValueError,
     "momentum: got 0.0, expected a number in (0, 1) for nesterov"),
    ("implementation", ("adam",), {"implementation": "fast"}, ValueError,
     "implementation: got 'fast'"),
]


@pytest.mark.parametrize("row", BAD_OPTIMIZERS, ids=[row[0] for row in BAD_OPTIMIZERS])
def test_bad_optimizer_arguments_give_one_message(row):
    _, args, kwargs, exc, fragment = row
    messages = {}
    for name in impls.available():
        backend = impls.load(name)
        model = backend.build_model("mlp", input_shape=(1, 4, 4), num_classes=3, hidden=(2,))
        with pytest.raises(exc) as info:
            backend.build_optimizer(*args, model, **kwargs)
        messages[name] = str(info.value)
    assert all(fragment in m for m in messages.values()), messages
    assert len(set(messages.values())) == 1, messages
