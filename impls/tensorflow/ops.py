"""The op contract (docs/api.md) in TensorFlow: forward with tf.nn, backward with tf.GradientTape.

Every forward runs its TensorFlow code under a persistent ``tf.GradientTape`` that watches the
input tensors; the cache keeps the tape, the inputs and the output, and every backward is
``tape.gradient(output, inputs, output_gradients=dy)``. No gradient formula is written here, so
the parity tests test TensorFlow's own gradients. The tape is persistent because a backward may
be called more than once on the same cache.

The edges, each handled in one place:

- NumPy <-> TensorFlow: ``_tensor`` and ``_numpy``. Tensors are always made with the array's
  explicit dtype, so float64 stays float64.
- Layout: the contract is NCHW, but TensorFlow's CPU conv and pooling kernels run NHWC only
  (``Conv2D``: "only supports the NHWC tensor format on the CPU"; ``MaxPool``/``AvgPool``: "only
  supports NHWC on device type CPU"). The windowed ops transpose at their edges with
  ``_to_nhwc``/``_to_nchw``; conv weights go from PyTorch's (C_out, C_in, kH, kW) to TensorFlow's
  (kH, kW, C_in, C_out) with ``_conv_weight``. The tape watches the NCHW tensors, so the
  gradients come back in the contract's layout.
- Padding: a padding the user names ("same"/"valid") is handed to TensorFlow as its own
  ``"SAME"``/``"VALID"``, so the parity tests check that the shared "same" rule in
  impls/_checks.py is TensorFlow's; explicit pads go through ``tf.pad`` and then ``"VALID"``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from impls import _checks
from impls._checks import Cache

__all__ = [
    "conv2d_forward", "conv2d_backward",
    "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward",
    "linear_forward", "linear_backward",
    "relu_forward", "relu_backward",
    "sigmoid_forward", "sigmoid_backward",
    "tanh_forward", "tanh_backward",
    "flatten_forward", "flatten_backward",
    "softmax_forward", "softmax_backward",
    "softmax_cross_entropy", "mse",
    "batchnorm_forward", "batchnorm_backward",
    "dropout_forward", "dropout_backward",
    "local_response_norm_forward", "local_response_norm_backward",
    "lrn_params_from_tf", "lrn_params_to_tf",
    "l2_regularization",
]


# ---------------------------------------------------------------------------------------------
# the edges: NumPy <-> TensorFlow, NCHW <-> NHWC, padding


def _tensor(a: np.ndarray) -> tf.Tensor:
    # An explicit dtype always: the dtype decides which kernel runs, and a float64 array must
    # never reach a float32 kernel.
    return tf.constant(a, dtype=a.dtype)


def _numpy(t: tf.Tensor) -> np.ndarray:
    # .numpy() copies, so the caller may change the result without touching the cached tape.
    return t.numpy()


def _to_nhwc(x: tf.Tensor) -> tf.Tensor:
    # TensorFlow's CPU conv and pooling kernels accept NHWC only.
    return tf.transpose(x, (0, 2, 3, 1))  # (N, C, H, W) -> (N, H, W, C)


def _to_nchw(x: tf.Tensor) -> tf.Tensor:
    return tf.transpose(x, (0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)


def _conv_weight(w: tf.Tensor) -> tf.Tensor:
    return tf.transpose(w, (2, 3, 1, 0))  # (C_out, C_in, kH, kW) -> (kH, kW, C_in, C_out)


def _padded(x: tf.Tensor, padding: object, pads: _checks.Pads,
            value: float) -> tuple[tf.Tensor, str]:
    """``x`` (N, H, W, C) and the padding argument to give the TensorFlow kernel.

    A padding named by the user ("same"/"valid", any case; the checker has rejected other
    words) goes to TensorFlow as is. Explicit pads are applied here with ``value`` and the
    kernel runs "VALID": ``tf.nn.avg_pool2d`` takes no explicit padding list, and one path for
    conv and both pools keeps them alike.
    """
    if isinstance(padding, str):
        return x, padding.upper()
    (top, bottom), (left, right) = pads
    paddings = [[0, 0], [top, bottom], [left, right], [0, 0]]
    return tf.pad(x, paddings, constant_values=value), "VALID"


# ---------------------------------------------------------------------------------------------
# the tape: one forward recorder, one backward


def _trace(fn, *arrays: np.ndarray):
    """Run ``fn`` on the tensors of ``arrays`` under a persistent tape that watches them."""
    inputs = [_tensor(a) for a in arrays]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(inputs)
        outputs = fn(*inputs)
    return tape, inputs, outputs


def _cache(op: str, tape: tf.GradientTape, inputs: list[tf.Tensor], output: tf.Tensor) -> Cache:
    # `output` is in the layout returned to the user (NCHW), so dy lines up with it.
    return Cache(op=op, shape=tuple(output.shape), dtype=inputs[0].dtype.as_numpy_dtype,
                 tape=tape, inputs=inputs, output=output)


def _forward(op: str, fn, *arrays: np.ndarray) -> tuple[np.ndarray, Cache]:
    tape, inputs, output = _trace(fn, *arrays)
    return _numpy(output), _cache(op, tape, inputs, output)


def _backward(dy: np.ndarray, cache: Cache, op: str) -> list[np.ndarray]:
    """The gradients of ``op``'s output, weighted by ``dy``, for every input the forward watched."""
    _checks.grad_output(dy, cache, op)
    grads = cache.tape.gradient(cache.output, cache.inputs, output_gradients=_tensor(dy),
                                unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return [_numpy(g) for g in grads]


def _loss_and_grads(fn, *arrays: np.ndarray) -> tuple[np.generic, list[np.ndarray]]:
    """A scalar loss ``fn(*arrays)`` as a NumPy scalar, and its gradients for each array."""
    tape, inputs, loss = _trace(fn, *arrays)
    grads = tape.gradient(loss, inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return _numpy(loss), [_numpy(g) for g in grads]


# ---------------------------------------------------------------------------------------------
# convolution and pooling


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride=1,
                   padding=0) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::conv2d_forward.

    ``tf.nn.conv2d`` is a cross-correlation like the contract's; it runs NHWC with
    (kH, kW, C_in, C_out) weights, hence the transposes at both edges.
    """
    geom = _checks.conv2d(x, w, b, stride, padding)

    def conv(x, w, b):
        h, tf_padding = _padded(_to_nhwc(x), padding, geom.pads, 0.0)  # (N, H', W', C)
        y = tf.nn.conv2d(h, _conv_weight(w), geom.stride, tf_padding)  # (N, OH, OW, F)
        return _to_nchw(tf.nn.bias_add(y, b))  # (N, F, OH, OW)

    return _forward("conv2d", conv, x, w, b)


def conv2d_backward(dy: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same contract as impls/numpy/ops.py::conv2d_backward."""
    dx, dw, db = _backward(dy, cache, "conv2d")
    return dx, dw, db


def max_pool2d_forward(x: np.ndarray, kernel_size, stride=None,
                       padding=0) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::max_pool2d_forward.

    Explicit pads are filled with -inf so that a padded cell never wins (TensorFlow's own SAME
    padding already leaves them out). TensorFlow's CPU max-pool gradient (float32 and float64)
    sends a window's gradient to its first maximum in row-major order, as the contract asks,
    and overlapping windows accumulate.
    """
    geom = _checks.pool2d(x, kernel_size, stride, padding)

    def max_pool(x):
        h, tf_padding = _padded(_to_nhwc(x), padding, geom.pads, -np.inf)  # (N, H', W', C)
        return _to_nchw(tf.nn.max_pool2d(h, geom.kernel, geom.stride, tf_padding))

    return _forward("max_pool2d", max_pool, x)


def max_pool2d_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::max_pool2d_backward."""
    (dx,) = _backward(dy, cache, "max_pool2d")
    return dx


def avg_pool2d_forward(x: np.ndarray, kernel_size, stride=None, padding=0,
                       count_include_pad=True) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::avg_pool2d_forward.

    TensorFlow's SAME average divides by the real cells only (count_include_pad=False), so
    that case is TensorFlow's own. Every other padded case pads with zeros here and pools
    "VALID", which divides by kH * kW (count_include_pad=True); to leave the padding out of
    the count, that average is divided by the average of a zero-padded mask of ones, i.e. by
    the fraction of the window that is real.
    """
    geom = _checks.pool2d(x, kernel_size, stride, padding)
    include = _checks.count_include_pad(count_include_pad)
    if include and isinstance(padding, str) and padding.lower() == "same":
        padding = geom.pads  # the same pads, TensorFlow's rule, but counted

    def avg_pool(x):
        h = _to_nhwc(x)  # (N, H, W, C)
        padded, tf_padding = _padded(h, padding, geom.pads, 0.0)
        y = tf.nn.avg_pool2d(padded, geom.kernel, geom.stride, tf_padding)  # (N, OH, OW, C)
        if tf_padding == "VALID" and not include:
            ones = tf.ones((1, h.shape[1], h.shape[2], 1), dtype=h.dtype)  # (1, H, W, 1)
            mask, _ = _padded(ones, geom.pads, geom.pads, 0.0)
            y = y / tf.nn.avg_pool2d(mask, geom.kernel, geom.stride, "VALID")
        return _to_nchw(y)  # (N, C, OH, OW)

    return _forward("avg_pool2d", avg_pool, x)


def avg_pool2d_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::avg_pool2d_backward."""
    (dx,) = _backward(dy, cache, "avg_pool2d")
    return dx


# ---------------------------------------------------------------------------------------------
# dense, activations, reshapes


def _flat(x: tf.Tensor) -> tf.Tensor:
    # The NCHW tensor reshaped in row-major order: the contract's (PyTorch's) flatten order.
    # D is spelled out because -1 is ambiguous when N = 0.
    return tf.reshape(x, (x.shape[0], int(np.prod(x.shape[1:]))))  # (N, D)


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::linear_forward.

    The tape watches x in its original shape, so dx comes back in that shape.
    """
    _checks.linear(x, w, b)

    def linear(x, w, b):
        return tf.matmul(_flat(x), w, transpose_b=True) + b  # (N, out)

    return _forward("linear", linear, x, w, b)


def linear_backward(dy: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same contract as impls/numpy/ops.py::linear_backward."""
    dx, dw, db = _backward(dy, cache, "linear")
    return dx, dw, db


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::relu_forward.

    TensorFlow's ReluGrad passes the gradient where x > 0 only: 0 at exactly 0.
    """
    _checks.elementwise(x)
    return _forward("relu", tf.nn.relu, x)


def relu_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::relu_backward."""
    (dx,) = _backward(dy, cache, "relu")
    return dx


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::sigmoid_forward."""
    _checks.elementwise(x)
    return _forward("sigmoid", tf.nn.sigmoid, x)


def sigmoid_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::sigmoid_backward."""
    (dx,) = _backward(dy, cache, "sigmoid")
    return dx


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::tanh_forward."""
    _checks.elementwise(x)
    return _forward("tanh", tf.nn.tanh, x)


def tanh_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::tanh_backward."""
    (dx,) = _backward(dy, cache, "tanh")
    return dx


def flatten_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::flatten_forward.

    A reshape of the NCHW array (never of an NHWC one: that would order the features
    differently from PyTorch's and NumPy's).
    """
    _checks.flatten(x)
    return _forward("flatten", _flat, x)


def flatten_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::flatten_backward."""
    (dx,) = _backward(dy, cache, "flatten")
    return dx


def softmax_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::softmax_forward.

    For (N, K) the contract's axis 1 is the last axis; TensorFlow's kernel subtracts the row
    maximum itself.
    """
    _checks.softmax(x)
    return _forward("softmax", lambda x: tf.nn.softmax(x, axis=-1), x)


def softmax_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::softmax_backward."""
    (dx,) = _backward(dy, cache, "softmax")
    return dx


# ---------------------------------------------------------------------------------------------
# losses


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[np.generic, np.ndarray]:
    """Same contract as impls/numpy/ops.py::softmax_cross_entropy.

    TensorFlow's fused kernels work from the logits (log-sum-exp after subtracting the row
    maximum), never from clipped probabilities: a margin of 1000 gives a loss of exactly 1000.
    The sparse kernel takes int32/int64 classes only, hence the cast to int64.
    """
    kind = _checks.softmax_cross_entropy(logits, labels)
    if kind == "integer":
        classes = _tensor(labels.astype(np.int64))  # (N,)

        def per_example(z):
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes, logits=z)
    else:
        probabilities = _tensor(labels)  # (N, K)

        def per_example(z):
            return tf.nn.softmax_cross_entropy_with_logits(labels=probabilities, logits=z)

    loss, (dlogits,) = _loss_and_grads(lambda z: tf.reduce_mean(per_example(z)), logits)
    return loss, dlogits


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[np.generic, np.ndarray]:
    """Same contract as impls/numpy/ops.py::mse."""
    _checks.mse(pred, target)
    t = _tensor(target)
    loss, (dpred,) = _loss_and_grads(lambda p: tf.reduce_mean(tf.square(p - t)), pred)
    return loss, dpred


# ---------------------------------------------------------------------------------------------
# normalisation and regularisation


def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                      running_mean: np.ndarray, running_var: np.ndarray, training=True,
                      momentum=0.1, eps=1e-5) -> tuple[np.ndarray, Cache, np.ndarray, np.ndarray]:
    """Same contract as impls/numpy/ops.py::batchnorm_forward.

    ``tf.nn.moments`` gives the mean and the biased variance; ``tf.nn.batch_normalization``
    normalises. (N, C, H, W) goes to NHWC so that the channel is the last axis, as the feature
    is in (N, D): one code path for both, with the statistics over every other axis.

    Keras: ``keras.layers.BatchNormalization(momentum=1 - momentum, epsilon=eps)`` normalises
    identically, but updates its moving variance with the BIASED batch variance where the
    contract (PyTorch) uses the unbiased one (checked with Keras 3.15, float64, momentum
    0.875: Keras' moving variance equals the biased update exactly and misses the unbiased one
    by 2e-3). Keras' default epsilon is 1e-3 and its default momentum 0.99.
    """
    _checks.batchnorm(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    momentum, eps = float(momentum), float(eps)  # Python floats take the tensors' dtype
    rm, rv = _tensor(running_mean), _tensor(running_var)  # (C,)
    channels_last = x.ndim == 4

    def normalize(x, gamma, beta):
        h = _to_nhwc(x) if channels_last else x  # (N, H, W, C) or (N, D)
        if training:
            mean, var = tf.nn.moments(h, axes=list(range(h.ndim - 1)))  # (C,)
        else:
            mean, var = rm, rv
        y = tf.nn.batch_normalization(h, mean, var, beta, gamma, eps)
        return (_to_nchw(y) if channels_last else y), mean, var

    tape, inputs, (y, mean, var) = _trace(normalize, x, gamma, beta)
    if training:
        n = x.size // x.shape[1]  # values per channel
        new_mean = (1 - momentum) * rm + momentum * mean
        new_var = (1 - momentum) * rv + momentum * var * n / (n - 1)
        new_running_mean, new_running_var = _numpy(new_mean), _numpy(new_var)
    else:
        new_running_mean, new_running_var = running_mean.copy(), running_var.copy()
    return _numpy(y), _cache("batchnorm", tape, inputs, y), new_running_mean, new_running_var


def batchnorm_backward(dy: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same contract as impls/numpy/ops.py::batchnorm_backward."""
    dx, dgamma, dbeta = _backward(dy, cache, "batchnorm")
    return dx, dgamma, dbeta


def dropout_forward(x: np.ndarray, p: float, training=True, mask: np.ndarray | None = None,
                    rng: np.random.Generator | None = None) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::dropout_forward.

    Without a mask, training uses ``tf.nn.dropout`` and TensorFlow's own random generator
    (seed it with ``tf.random.set_seed``); ``rng`` is accepted for the common signature and
    ignored. A given mask wins over p = 0: it is what makes all backends compute the same.
    """
    _checks.dropout(x, p, training, mask)
    p = float(p)  # a Python float takes x's dtype (a NumPy float64 scalar would not)
    if not training:
        fn = tf.identity
    elif mask is not None:
        keep = _tensor(mask.astype(x.dtype))  # bool or 0/1 -> x's dtype, shaped like x

        def fn(x):
            return x * keep / (1 - p)
    elif p == 0:
        fn = tf.identity
    else:
        def fn(x):
            return tf.nn.dropout(x, rate=p)

    return _forward("dropout", fn, x)


def dropout_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::dropout_backward."""
    (dx,) = _backward(dy, cache, "dropout")
    return dx


def local_response_norm_forward(x: np.ndarray, size: int, alpha=1e-4, beta=0.75,
                                k=1.0) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::local_response_norm_forward.

    Composed from ops instead of ``tf.nn.local_response_normalization``, whose kernel has no
    float64 version (float32, float16 and bfloat16 only) and whose window 2 * depth_radius + 1
    cannot be even; ``lrn_params_from_tf``/``lrn_params_to_tf`` map the two parameter sets.
    Only elementwise ops, a pad, slices and a sum: channels stay on axis 1, no NHWC needed.
    """
    _checks.local_response_norm(x, size, alpha, beta, k)
    size, scale, beta, k = int(size), float(alpha) / size, float(beta), float(k)

    def lrn(x):
        c = x.shape[1]
        # channel c's window is c - size // 2 .. c + (size - 1) // 2; channels outside [0, C)
        # are zeros, so after padding, window c starts at padded channel c
        squares = tf.pad(tf.square(x), [[0, 0], [size // 2, (size - 1) // 2], [0, 0], [0, 0]])
        window_sum = tf.add_n([squares[:, i:i + c] for i in range(size)])  # (N, C, H, W)
        return x / tf.pow(k + scale * window_sum, beta)

    return _forward("local_response_norm", lrn, x)


def local_response_norm_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::local_response_norm_backward."""
    (dx,) = _backward(dy, cache, "local_response_norm")
    return dx


def lrn_params_from_tf(depth_radius=5, bias=1.0, alpha=1.0, beta=0.5) -> dict[str, float]:
    """The contract's LRN arguments equal to ``tf.nn.local_response_normalization``'s.

    TensorFlow sums the squares over [c - depth_radius, c + depth_radius] and multiplies the
    sum by alpha; the contract (PyTorch) sums over a window of ``size`` and multiplies by
    alpha / size. So size = 2 * depth_radius + 1, alpha = alpha_tf * size, k = bias, same
    beta. The defaults are TensorFlow's. Returns dict(size=..., alpha=..., beta=..., k=...).
    """
    radius = _checks.integer("depth_radius", depth_radius, 0)
    size = 2 * radius + 1
    return dict(size=size, alpha=float(alpha) * size, beta=float(beta), k=float(bias))


def lrn_params_to_tf(size: int, alpha=1e-4, beta=0.75, k=1.0) -> dict[str, float]:
    """The inverse of ``lrn_params_from_tf``: the contract's LRN arguments as TensorFlow's.

    Returns dict(depth_radius=..., bias=..., alpha=..., beta=...). Only odd sizes have a
    TensorFlow equivalent (its window 2 * depth_radius + 1 is always odd): ValueError else.
    """
    size = _checks.integer("size", size, 1)
    if size % 2 == 0:
        raise ValueError(f"size: got {size}, expected an odd integer (TensorFlow's LRN window "
                         "2 * depth_radius + 1 is always odd; even sizes have no equivalent)")
    return dict(depth_radius=(size - 1) // 2, bias=float(k), alpha=float(alpha) / size,
                beta=float(beta))


def l2_regularization(weights, weight_decay: float):
    """Same contract as impls/numpy/ops.py::l2_regularization.

    ``tf.nn.l2_loss(w)`` is sum(w ** 2) / 2, the contract's half already in it. With no
    weights the loss is np.float64(0.0) (there is no dtype to take).
    """
    arrays = _checks.l2_regularization(weights, weight_decay)
    weight_decay = float(weight_decay)
    if arrays:
        loss, grads = _loss_and_grads(
            lambda *ws: weight_decay * tf.add_n([tf.nn.l2_loss(w) for w in ws]), *arrays)
    else:
        loss, grads = np.float64(0.0), []
    if isinstance(weights, dict):
        return loss, dict(zip(weights.keys(), grads, strict=True))
    return loss, grads
