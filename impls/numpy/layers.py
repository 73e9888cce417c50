"""Layers as plain classes on top of impls/numpy/ops.py ("Deep Learning from Scratch" style).

Every layer keeps what its backward needs when it runs forward and hands it back:

    y = layer.forward(x, training=True)   # keeps the op's cache
    dx = layer.backward(dy)               # fills layer.grads (same keys as layer.params)

Constructors take PyTorch's arguments (docs/models.md). ``params`` holds the trainable arrays
under PyTorch's suffixes ("weight", "bias"); batch norm also has ``buffers`` ("running_mean",
"running_var"). An optimizer updates these arrays IN PLACE, so a layer and a model always share
them; nothing here ever rebinds a parameter array.

The ``Layer`` base class does the bookkeeping once: a layer names its pair of ops and its
hyperparameters, and the base calls ``forward_op(x, *params, **hyper)`` and
``backward_op(dy, cache) -> (dx, *param_grads)``, param grads in the order of ``params``. Only
batch norm (running statistics) and dropout (masks, random numbers) override the forward.
"""

from __future__ import annotations

import numpy as np

from reference.models import flatten_order

from .. import _checks
from . import ops

__all__ = ["Layer", "Conv2d", "MaxPool2d", "AvgPool2d", "Linear", "ReLU", "Sigmoid", "Tanh",
           "Flatten", "BatchNorm1d", "BatchNorm2d", "Dropout", "LocalResponseNorm"]


def dtype_arg(dtype: object) -> np.dtype:
    try:
        resolved = None if dtype is None else np.dtype(dtype)  # np.dtype(None) is float64
    except TypeError:
        resolved = None
    if resolved not in _checks.FLOAT_DTYPES:
        raise ValueError(f"dtype: got {dtype!r}, expected 'float32' or 'float64'")
    return resolved


def _he_normal(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Standalone layers start He-normal; models overwrite this with the spec's weights."""
    fan_in = int(np.prod(shape[1:]))
    return np.random.default_rng().normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(dtype)


class Layer:
    """Bookkeeping shared by every layer: params, grads, the cache between forward and backward.

    A subclass sets ``ops_pair = (forward_op, backward_op)`` and ``self.hyper`` (keyword
    arguments of forward_op), and creates its ``params`` in the positional order forward_op
    takes them after x.
    """

    ops_pair: tuple = ()
    input_grad_optional = False  # True: the backward op takes input_grad=False (skips dx)

    def __init__(self, **hyper: object):
        self.hyper = hyper
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self._cache = None

    def forward(self, x: np.ndarray, training: bool = True) -> np.ndarray:
        y, self._cache = self._forward(x, _checks.boolean("training", training))
        return y

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        """dx, and the parameters' gradients in ``grads``. ``input_grad=False`` (layers with
        parameters only): Conv2d and Linear skip dx and return None; batch norm, whose dx
        costs little, computes it anyway."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        input_grad = _checks.boolean("input_grad", input_grad)
        if not input_grad and not self.params:
            raise ValueError(f"input_grad: got False, but {type(self).__name__} has no "
                             "parameters: its input gradient is all it computes")
        dx, *param_grads = self._backward(dy, self._cache, input_grad)
        self.grads = dict(zip(self.params, param_grads, strict=True))
        return dx

    def _forward(self, x: np.ndarray, training: bool) -> tuple[np.ndarray, object]:
        return self.ops_pair[0](x, *self.params.values(), **self.hyper)

    def _backward(self, dy: np.ndarray, cache: object,
                  input_grad: bool) -> tuple[np.ndarray | None, ...]:
        # conv2d and linear can skip dx; other layers (batch norm) compute it regardless
        skip = {"input_grad": False} if not input_grad and self.input_grad_optional else {}
        grads = self.ops_pair[1](dy, cache, **skip)
        return grads if isinstance(grads, tuple) else (grads,)

    def __repr__(self) -> str:
        shapes = [f"{k} {v.shape}" for k, v in self.params.items()]
        args = ", ".join(shapes + [f"{k}={v!r}" for k, v in self.hyper.items()])
        return f"{type(self).__name__}({args})"


# ---------------------------------------------------------------------------------------------
# layers with weights


class Conv2d(Layer):
    """2-D convolution (N, C_in, H, W) -> (N, C_out, OH, OW); weight (C_out, C_in, kH, kW)."""

    ops_pair = (ops.conv2d_forward, ops.conv2d_backward)
    input_grad_optional = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 dtype="float32"):
        super().__init__(stride=stride, padding=padding)
        c_in = _checks.integer("in_channels", in_channels, 1)
        c_out = _checks.integer("out_channels", out_channels, 1)
        kh, kw = _checks.int_pair("kernel_size", kernel_size, 1)
        dtype = dtype_arg(dtype)
        self.params["weight"] = _he_normal((c_out, c_in, kh, kw), dtype)
        if _checks.boolean("bias", bias):
            self.params["bias"] = np.zeros(c_out, dtype)

    def _forward(self, x, training):
        if "bias" in self.params:
            return super()._forward(x, training)
        # bias=False: no bias parameter at all; the op adds none for b=None
        return ops.conv2d_forward(x, self.params["weight"], None, **self.hyper)

    def _backward(self, dy, cache, input_grad):
        dx, dw, db = super()._backward(dy, cache, input_grad)
        return (dx, dw, db) if "bias" in self.params else (dx, dw)  # db is None without bias


class Linear(Layer):
    """Fully connected; weight (out, in), bias (out,). (N, ...) flattened to (N, in) -> (N, out)."""

    ops_pair = (ops.linear_forward, ops.linear_backward)
    input_grad_optional = True

    def __init__(self, in_features, out_features, dtype="float32"):
        super().__init__()
        d_in = _checks.integer("in_features", in_features, 1)
        d_out = _checks.integer("out_features", out_features, 1)
        dtype = dtype_arg(dtype)
        self.params["weight"] = _he_normal((d_out, d_in), dtype)
        self.params["bias"] = np.zeros(d_out, dtype)


class _BatchNorm(Layer):
    """Batch norm with PyTorch's conventions (ops.batchnorm_forward); weight = gamma, bias = beta.

    Training normalises with the batch statistics and updates the running ones in place;
    inference normalises with the running statistics.
    """

    ops_pair = (ops.batchnorm_forward, ops.batchnorm_backward)
    input_ndim = 0  # 2 for BatchNorm1d (N, D), 4 for BatchNorm2d (N, C, H, W)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype="float32"):
        super().__init__(momentum=_checks.real("momentum", momentum, 0.0, 1.0),
                         eps=_checks.real("eps", eps, 0.0, low_open=True))
        c = _checks.integer("num_features", num_features, 1)
        dtype = dtype_arg(dtype)
        self.params["weight"] = np.ones(c, dtype)
        self.params["bias"] = np.zeros(c, dtype)
        self.buffers["running_mean"] = np.zeros(c, dtype)
        self.buffers["running_var"] = np.ones(c, dtype)

    def _forward(self, x, training):
        _checks.float_array("x", x, ndim=self.input_ndim)
        y, cache, mean, var = ops.batchnorm_forward(
            x, *self.params.values(), *self.buffers.values(), training=training, **self.hyper)
        self.buffers["running_mean"][...] = mean
        self.buffers["running_var"][...] = var
        return y, cache


class BatchNorm1d(_BatchNorm):
    """Batch norm per feature of (N, D)."""

    input_ndim = 2


class BatchNorm2d(_BatchNorm):
    """Batch norm per channel of (N, C, H, W)."""

    input_ndim = 4


# ---------------------------------------------------------------------------------------------
# layers without weights


class MaxPool2d(Layer):
    """Max pooling, (N, C, H, W) -> (N, C, OH, OW); padded cells never win."""

    ops_pair = (ops.max_pool2d_forward, ops.max_pool2d_backward)

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding)


class AvgPool2d(Layer):
    """Average pooling, (N, C, H, W) -> (N, C, OH, OW)."""

    ops_pair = (ops.avg_pool2d_forward, ops.avg_pool2d_backward)

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding,
                         count_include_pad=count_include_pad)


class LocalResponseNorm(Layer):
    """Local response normalisation across channels (PyTorch's definition)."""

    ops_pair = (ops.local_response_norm_forward, ops.local_response_norm_backward)

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__(size=size, alpha=alpha, beta=beta, k=k)


class ReLU(Layer):
    ops_pair = (ops.relu_forward, ops.relu_backward)


class Sigmoid(Layer):
    ops_pair = (ops.sigmoid_forward, ops.sigmoid_backward)


class Tanh(Layer):
    ops_pair = (ops.tanh_forward, ops.tanh_backward)


class Flatten(Layer):
    """(N, C, H, W) -> (N, D). order="nchw": features (c, h, w), the canonical order;
    "nhwc": (h, w, c), as a tutorial that flattens NHWC activations (reference.models)."""

    ops_pair = (ops.flatten_forward, ops.flatten_backward)

    def __init__(self, order="nchw"):
        super().__init__()
        self.order = flatten_order("order", order)

    def _forward(self, x, training):
        if self.order == "nhwc" and getattr(x, "ndim", 0) == 4:
            y, cache = ops.flatten_forward(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
            return y, (cache, True)
        y, cache = ops.flatten_forward(x)
        return y, (cache, False)

    def _backward(self, dy, cache, input_grad):
        cache, channels_last = cache
        dx = ops.flatten_backward(dy, cache)
        return (np.ascontiguousarray(dx.transpose(0, 3, 1, 2)) if channels_last else dx,)

    def __repr__(self) -> str:
        return f"Flatten(order={self.order!r})"


class Dropout(Layer):
    """Inverted dropout: y = x * mask / (1 - p) in training, y = x in inference.

    ``forward(x, training, mask)`` uses the mask given (1 keeps; how parity tests make every
    backend drop the same units) or draws one from ``self.rng`` (a np.random.Generator; a
    model shares its own seeded generator with all its Dropout layers).
    """

    ops_pair = (ops.dropout_forward, ops.dropout_backward)

    def __init__(self, p=0.5, rng=None):
        super().__init__(p=_checks.real("p", p, 0.0, 1.0, high_open=True))
        self.rng = np.random.default_rng() if rng is None else rng

    def forward(self, x, training=True, mask=None):
        y, self._cache = ops.dropout_forward(x, training=training, mask=mask, rng=self.rng,
                                             **self.hyper)
        return y
