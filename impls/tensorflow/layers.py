"""Keras layers with PyTorch's constructor arguments, computing in NHWC (docs/models.md).

    layer = Conv2d(3, 16, kernel_size=3, padding="same", dtype="float64")
    y = layer(h)                                   # h (N, H, W, C) -> (N, OH, OW, 16)
    y = bn(h, training=True)                       # batch statistics, running ones updated
    y = dropout(h, training=True, keep=mask)       # an injected 0/1 keep-mask

Every layer is a ``keras.layers.Layer`` (Linear, ReLU, Sigmoid, Tanh and Flatten subclass the
native Keras layer that does exactly their job), so Keras optimizers and ``tf.function`` work
on their variables. Activations are NHWC because TensorFlow's CPU conv and pooling kernels
accept nothing else; a model converts its NCHW input once (models.py). The variables are in
TensorFlow's layouts: conv kernel (kH, kW, C_in, C_out), dense kernel (in, out); models.py
converts from and to the canonical PyTorch layouts at its edges, never inside the computation.

The computations are ops.py's tensor-level helpers (``_conv2d_nhwc``, ``_avg_pool2d_nhwc``,
``_batchnorm_nhwc``, ...), the same code the functional ops run: padding named by the user
("same"/"valid") goes to TensorFlow as its own, explicit pads through ``tf.pad``.

dtype: pass ``dtype="float64"`` (a Keras dtype policy) to compute in float64. Keras autocasts a
layer's floating inputs to the layer's compute dtype, so a float32 layer (the default) would
silently turn float64 inputs into float32: a model sets every layer's dtype to its own.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from reference.models import flatten_order

from .. import _checks
from . import ops

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d", "Linear", "ReLU", "Sigmoid", "Tanh", "Flatten",
           "BatchNorm1d", "BatchNorm2d", "Dropout", "LocalResponseNorm", "dtype_arg"]


def dtype_arg(dtype: object) -> np.dtype:
    """"float32"/"float64" (or their NumPy dtypes) as a NumPy dtype; ValueError otherwise."""
    try:
        resolved = None if dtype is None else np.dtype(dtype)  # np.dtype(None) is float64
    except TypeError:
        resolved = None
    if resolved not in _checks.FLOAT_DTYPES:
        raise ValueError(f"dtype: got {dtype!r}, expected 'float32' or 'float64'")
    return resolved


def _padding_arg(padding: object) -> object:
    """The padding as "same"/"valid" (lowercase) or explicit ((top, bottom), (left, right)).

    Explicit pads do not depend on the input size, so they are resolved once, here; a word is
    kept and handed to TensorFlow (its pads for "same" depend on the input size).
    """
    # any size/kernel/stride validates the form; only explicit pads are kept from the result
    pads = _checks.padding_arg(padding, (1, 1), (1, 1), (1, 1))
    return padding.lower() if isinstance(padding, str) else pads


def _pads(padding: object, h: tf.Tensor, kernel: tuple[int, int],
          stride: tuple[int, int]) -> _checks.Pads:
    """Explicit pads for the static height and width of ``h`` (N, H, W, C)."""
    return _checks.padding_arg(padding, (h.shape[1], h.shape[2]), kernel, stride)


def _nchw_probe(input_shape: tuple, dtype: str) -> np.ndarray:
    """A zero array shaped like one NCHW example of the NHWC ``input_shape``, for _checks."""
    _, height, width, channels = input_shape
    return np.zeros((1, channels, height, width), dtype)


# ---------------------------------------------------------------------------------------------
# layers with weights


class Conv2d(keras.layers.Layer):
    """2-D convolution (N, H, W, C_in) -> (N, OH, OW, C_out); kernel (kH, kW, C_in, C_out)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.in_channels = _checks.integer("in_channels", in_channels, 1)
        self.out_channels = _checks.integer("out_channels", out_channels, 1)
        self.kernel_size = _checks.int_pair("kernel_size", kernel_size, 1)
        self.stride = _checks.int_pair("stride", stride, 1)
        self.padding = _padding_arg(padding)
        self.use_bias = _checks.boolean("bias", bias)  # Keras' name (Conv2D(use_bias=...))
        self.bias = None  # bias=False: no bias variable at all, and the op adds none

    def build(self, input_shape):
        x = _nchw_probe(input_shape, self.variable_dtype)
        w = np.zeros((self.out_channels, self.in_channels, *self.kernel_size), x.dtype)
        # the functional op's checks: channel count, a kernel larger than the padded input
        _checks.conv2d(x, w, np.zeros(self.out_channels, x.dtype), self.stride, self.padding)
        self.kernel = self.add_weight(shape=(*self.kernel_size, self.in_channels,
                                             self.out_channels), name="kernel")
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.out_channels,), initializer="zeros",
                                        name="bias")

    def call(self, h):
        pads = _pads(self.padding, h, self.kernel_size, self.stride)
        return ops._conv2d_nhwc(h, self.kernel, self.bias, self.stride, self.padding, pads)


class Linear(keras.layers.Dense):
    """Fully connected (N, in) -> (N, out): Keras' Dense, kernel (in, out), bias (out,)."""

    def __init__(self, in_features, out_features, **kwargs):
        super().__init__(units=_checks.integer("out_features", out_features, 1), **kwargs)
        self.in_features = _checks.integer("in_features", in_features, 1)

    def build(self, input_shape):
        if input_shape[-1] != self.in_features:
            raise ValueError(f"input_shape: got {tuple(input_shape)}, expected (N, "
                             f"{self.in_features}) for in_features={self.in_features}")
        super().build(input_shape)


class _BatchNorm(keras.layers.Layer):
    """Batch norm over the last (channel) axis with PyTorch's conventions, written here.

    Keras' own ``BatchNormalization(momentum=1 - momentum, epsilon=eps)`` normalises the same
    way but updates its moving variance with the BIASED batch variance (see
    ops.batchnorm_forward's note); PyTorch, and the contract, use the unbiased one. Variables:
    gamma, beta (trainable), running_mean, running_var (updated in training mode unless
    ``update_stats=False``, which gradients() uses to leave the model unchanged).
    """

    input_ndim = 0  # 2 for BatchNorm1d (N, D), 4 for BatchNorm2d (N, H, W, C)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_features = _checks.integer("num_features", num_features, 1)
        self.eps = _checks.real("eps", eps, 0.0, low_open=True)
        self.momentum = _checks.real("momentum", momentum, 0.0, 1.0)

    def build(self, input_shape):
        if len(input_shape) != self.input_ndim or input_shape[-1] != self.num_features:
            raise ValueError(f"input_shape: got {tuple(input_shape)}, expected "
                             f"{self.input_ndim} dimensions, the last {self.num_features}")
        shape = (self.num_features,)
        self.gamma = self.add_weight(shape=shape, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=shape, initializer="zeros", name="beta")
        self.running_mean = self.add_weight(shape=shape, initializer="zeros", trainable=False,
                                            name="running_mean")
        self.running_var = self.add_weight(shape=shape, initializer="ones", trainable=False,
                                           name="running_var")

    def __call__(self, h, *args, **kwargs):
        shape = tf.TensorShape(getattr(h, "shape", None))
        if kwargs.get("training") and shape.rank in (2, 4) and shape.is_fully_defined():
            # The contract's refusal of one value per channel (the unbiased running variance
            # would be 0/0: TensorFlow writes NaN into running_var and goes on). Checked here,
            # not in call(), whose exceptions Keras rewrites ("Exception encountered when
            # calling ..."); it needs a static shape, so a model checks its whole batch before
            # its compiled step (whose trace may leave N unknown), see _checks.training_batch.
            nhwc = tuple(shape)
            probe = np.broadcast_to(np.zeros((), np.float32), (nhwc[0], nhwc[-1], *nhwc[1:-1]))
            channel = np.zeros(nhwc[-1], np.float32)
            _checks.batchnorm(probe, channel, channel, channel, channel, True, self.momentum,
                              self.eps)
        return super().__call__(h, *args, **kwargs)

    def call(self, h, training=False, update_stats=True):
        y, mean, var = ops._batchnorm_nhwc(h, self.gamma, self.beta, self.running_mean,
                                           self.running_var, training, self.eps)
        if training and update_stats:
            n = tf.cast(tf.size(h) // h.shape[-1], h.dtype)  # values per channel
            new_mean, new_var = ops._running_stats(self.running_mean, self.running_var, mean,
                                                   var, n, self.momentum)
            self.running_mean.assign(new_mean)
            self.running_var.assign(new_var)
        return y


class BatchNorm1d(_BatchNorm):
    """Batch norm per feature of (N, D)."""

    input_ndim = 2


class BatchNorm2d(_BatchNorm):
    """Batch norm per channel of (N, H, W, C)."""

    input_ndim = 4


# ---------------------------------------------------------------------------------------------
# layers without weights


class _Pool2d(keras.layers.Layer):
    """Shared constructor and checks of the two pools (PyTorch's arguments)."""

    def __init__(self, kernel_size, stride=None, padding=0, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = _checks.int_pair("kernel_size", kernel_size, 1)
        self.stride = (self.kernel_size if stride is None
                       else _checks.int_pair("stride", stride, 1))
        self.padding = _padding_arg(padding)

    def build(self, input_shape):
        # the functional op's checks: pads at most half the kernel, kernel within the input
        _checks.pool2d(_nchw_probe(input_shape, self.variable_dtype), self.kernel_size,
                       self.stride, self.padding)


class MaxPool2d(_Pool2d):
    """Max pooling, (N, H, W, C) -> (N, OH, OW, C); padded cells never win."""

    def call(self, h):
        pads = _pads(self.padding, h, self.kernel_size, self.stride)
        return ops._max_pool2d_nhwc(h, self.kernel_size, self.stride, self.padding, pads)


class AvgPool2d(_Pool2d):
    """Average pooling, (N, H, W, C) -> (N, OH, OW, C)."""

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True, **kwargs):
        super().__init__(kernel_size, stride, padding, **kwargs)
        self.count_include_pad = _checks.count_include_pad(count_include_pad)

    def call(self, h):
        pads = _pads(self.padding, h, self.kernel_size, self.stride)
        return ops._avg_pool2d_nhwc(h, self.kernel_size, self.stride, self.padding, pads,
                                    self.count_include_pad)


class LocalResponseNorm(keras.layers.Layer):
    """Local response normalisation across channels (PyTorch's definition), NHWC.

    Composed from ops (ops._local_response_norm): ``tf.nn.local_response_normalization`` has no
    float64 kernel and no even window.
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0, **kwargs):
        super().__init__(**kwargs)
        self.size = _checks.integer("size", size, 1)
        self.alpha = _checks.real("alpha", alpha, 0.0)
        self.beta = _checks.real("beta", beta, 0.0)
        self.k = _checks.real("k", k, 0.0, low_open=True)

    def call(self, h):
        return ops._local_response_norm(h, self.size, self.alpha, self.beta, self.k, axis=-1)


def _onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels: TF_ENABLE_ONEDNN_OPTS, or TF's default for
    this CPU. TF's own switch is in a private module: without it, assume oneDNN (the safe
    side for ReLU below)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return True


ONEDNN = _onednn_enabled()


class ReLU(keras.layers.ReLU):
    """max(x, 0): Keras' ReLU (tf.nn.relu; gradient 0 at exactly 0), NaN kept.

    Under tf.function grappler's remapper fuses MatMul (or Conv2D) + BiasAdd + Relu into one
    oneDNN kernel when oneDNN is on (TF's default on CPUs with AVX512_VNNI, AVX512_BF16 or
    AMX), and that fused ReLU turns NaN into 0: one NaN pixel gave an mlp finite logits and a
    finite loss while fc1.weight became NaN (reference/upstream_defects.json,
    "tf-onednn-fused-matmul-bias-relu-nan"). Selecting the input itself where it is NaN gives
    the BiasAdd a second consumer, so the remapper leaves the three ops unfused, and keeps the
    NaN; elsewhere the value and the gradient are tf.nn.relu's. Only where oneDNN is on
    (``ONEDNN``): unfused, the simple_cnn training step took ~30 % longer.
    """

    def call(self, inputs):
        y = super().call(inputs)
        return tf.where(tf.math.is_nan(inputs), inputs, y) if ONEDNN else y


class Sigmoid(keras.layers.Activation):
    """1 / (1 + exp(-x)): Keras' sigmoid activation."""

    def __init__(self, **kwargs):
        super().__init__("sigmoid", **kwargs)


class Tanh(keras.layers.Activation):
    """tanh(x): Keras' tanh activation."""

    def __init__(self, **kwargs):
        super().__init__("tanh", **kwargs)


class Flatten(keras.layers.Flatten):
    """(N, H, W, C) -> (N, H * W * C): Keras' Flatten, so the features come in (h, w, c) order.

    ``order`` is the canonical feature order of the model (reference.models): "nchw" (c, h, w),
    PyTorch's, for which models.py permutes the rows of the Linear that follows, at the
    weights' edges, instead of transposing activations back to NCHW here; "nhwc" (h, w, c),
    the NHWC tutorials' order, which is this layer's own (no permutation). The computation is
    the same for both. ``data_format`` is pinned: with Keras' global image_data_format set to
    "channels_first", Keras' Flatten would first transpose what it takes for NCHW.
    """

    def __init__(self, order="nchw", **kwargs):
        super().__init__(data_format="channels_last", **kwargs)
        self.order = flatten_order("order", order)


class Dropout(keras.layers.Layer):
    """Inverted dropout: y = x * keep / (1 - p) in training, y = x in inference.

    ``call(h, training, keep=None)``: ``keep`` is a 0/1 mask shaped like h (how parity tests
    make every backend drop the same units); without it, ``tf.nn.dropout`` draws one
    (TensorFlow's generator, seeded by ``tf.random.set_seed``). The argument is not called
    ``mask`` because Keras reserves that name for its own sequence masking.
    """

    def __init__(self, p=0.5, **kwargs):
        super().__init__(**kwargs)
        self.p = _checks.real("p", p, 0.0, 1.0, high_open=True)

    def call(self, h, training=False, keep=None):
        if not training:
            return h
        return ops._dropout(h, self.p, keep)
