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

The computations themselves are tensor-level helpers (``_conv2d_nhwc``, ``_max_pool2d_nhwc``,
``_avg_pool2d_nhwc``, ``_batchnorm_nhwc``, ``_running_stats``, ``_dropout``,
``_local_response_norm``, ``_l2``): the ops here wrap them between the NumPy/NCHW edges, and
the Keras layers of layers.py call the same helpers on their NHWC tensors.
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


def _backward(dy: np.ndarray, cache: Cache, op: str,
              input_grad: object = True) -> list[np.ndarray | None]:
    """The gradients of ``op``'s output, weighted by ``dy``, for every input the forward watched.

    ``input_grad=False`` leaves the first input (x) out of the tape's request, so its gradient
    is not computed, and returns None in its place.
    """
    _checks.grad_output(dy, cache, op)
    input_grad = _checks.boolean("input_grad", input_grad)
    inputs = cache.inputs if input_grad else cache.inputs[1:]
    grads = cache.tape.gradient(cache.output, inputs, output_gradients=_tensor(dy),
                                unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads = [_numpy(g) for g in grads]
    return grads if input_grad else [None, *grads]


def _loss_and_grads(fn, *arrays: np.ndarray) -> tuple[np.generic, list[np.ndarray]]:
    """A scalar loss ``fn(*arrays)`` as a NumPy scalar, and its gradients for each array."""
    tape, inputs, loss = _trace(fn, *arrays)
    grads = tape.gradient(loss, inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return _numpy(loss), [_numpy(g) for g in grads]


# ---------------------------------------------------------------------------------------------
# convolution and pooling


def _conv2d_nhwc(h: tf.Tensor, kernel: tf.Tensor, b: tf.Tensor | None, stride: tuple[int, int],
                 padding: object, pads: _checks.Pads) -> tf.Tensor:
    """h (N, H, W, C), kernel (kH, kW, C, F), b (F,) or None (no bias) -> (N, OH, OW, F).

    An empty batch runs as one zero image, sliced back to none: oneDNN's float32 Conv2D
    (TF 2.21 with TF_ENABLE_ONEDNN_OPTS=1, the default on CPUs with AVX512_VNNI or AMX)
    returns its padded input unchanged for N = 0, (0, H', W', C) instead of (0, OH, OW, F),
    eagerly and in tf.function (reference/upstream_defects.json, tf-onednn-conv2d-empty-batch).
    The slice gives the right shape and zero weight gradients. A batch unknown at trace time
    chooses with ``tf.cond``. The zero image is a new tensor, not ``tf.pad`` of the empty
    batch: inside tf.function oneDNN fuses Pad + Conv2D and drops a pad of the batch axis
    (tf-onednn-pad-conv2d-fusion-drops-batch-pad).
    """
    def conv(h):
        return _conv2d_nonempty_nhwc(h, kernel, b, stride, padding, pads)

    def empty():
        return conv(tf.zeros((1, *h.shape[1:]), h.dtype))[:0]  # (0, OH, OW, F)

    if h.shape[0] is None:
        return tf.cond(tf.shape(h)[0] > 0, lambda: conv(h), empty)
    return empty() if h.shape[0] == 0 else conv(h)


def _conv2d_nonempty_nhwc(h: tf.Tensor, kernel: tf.Tensor, b: tf.Tensor | None,
                          stride: tuple[int, int], padding: object,
                          pads: _checks.Pads) -> tf.Tensor:
    """_conv2d_nhwc for N >= 1, routed around oneDNN's wrong geometries."""
    kernel_hw, channels = tuple(kernel.shape[:2]), kernel.shape[2]
    out = [(size + p0 + p1 - k) // s + 1
           for size, (p0, p1), k, s in zip(h.shape[1:3], pads, kernel_hw, stride)]
    if channels == 1 and any(o == 1 and s > 1 for o, s in zip(out, stride)):
        # oneDNN's float32 Conv2D (TF 2.21, oneDNN on) returns garbage (-2e-15, 9.4e24) for
        # N >= 2, one input channel, strides (1, s > 1), an output width of 1 and a height
        # above 1, eagerly and in tf.function (issue 9 defect 1, seen on an AVX-512 machine;
        # this project's AVX2 machine computes it right, so the region is the audit's, widened
        # to both axes: reference/upstream_defects.json, tf-onednn-conv2d-stride-w-cin1-ow1).
        # An axis with one output has no stride: the same numbers come from the padded input
        # cropped to the kernel along that axis with stride 1, which never hits the kernel.
        h, _ = _padded(h, pads, pads, 0.0)  # (N, H', W', C), explicit even for "same"
        keep = [k if o == 1 else size for o, k, size in zip(out, kernel_hw, h.shape[1:3])]
        h, tf_padding = h[:, :keep[0], :keep[1], :], "VALID"
        stride = tuple(1 if o == 1 else s for o, s in zip(out, stride))
    else:
        h, tf_padding = _padded(h, padding, pads, 0.0)  # (N, H', W', C)
    if kernel_hw == (1, 1) and tuple(stride) != (1, 1):
        # oneDNN's Conv2DBackpropFilter (jit_1x1 backward weights, TF 2.21 with oneDNN on)
        # writes past its workspace for a strided 1x1 kernel on an NHWC input with fewer
        # channels than its block (8 for AVX2, 16 for AVX-512): heap corruption ("corrupted
        # size vs. prev_size" in about half the runs of 300 float32 steps on a (1, 7, 6, 2)
        # input) or a wrong dW (relative error 0.5 on (32, 32, 32, 4) with stride 2 on this
        # project's AVX2 machine); upstream uxlfoundation/oneDNN#6035. A strided 1x1 conv is
        # a 1x1 conv of the subsampled input, which never hits it ("same" never pads a 1x1
        # kernel, so VALID is the same).
        h, stride, tf_padding = h[:, ::stride[0], ::stride[1], :], (1, 1), "VALID"
    y = tf.nn.conv2d(h, kernel, stride, tf_padding)
    return y if b is None else tf.nn.bias_add(y, b)


def _max_pool2d_nhwc(h: tf.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                     padding: object, pads: _checks.Pads) -> tf.Tensor:
    """h (N, H, W, C) -> (N, OH, OW, C); explicit pads are -inf so that they never win.

    Input holding NaN or -inf (one reduction tells; ``tf.cond`` so that it also runs inside
    ``tf.function``) goes to ``_nonfinite_max_pool2d_nhwc``: TensorFlow's kernels skip NaN
    (a window [1, NaN] gives 1; tensorflow/tensorflow#2501, closed without a fix; and which
    channels skip it can depend on how they are packed, tensorflow/tensorflow#125965) and
    start each window from -FLT_MAX (an all -inf window gives -3.4e38, and behind explicit
    -inf pads its gradient lands on a padded cell and is lost).
    """
    def native():
        hp, tf_padding = _padded(h, padding, pads, -np.inf)  # (N, H', W', C)
        return tf.nn.max_pool2d(hp, kernel, stride, tf_padding)

    def nonfinite():
        return _nonfinite_max_pool2d_nhwc(h, kernel, stride, pads)

    return tf.cond(tf.reduce_all(h > -np.inf), native, nonfinite)  # False at NaN and -inf


def _nonfinite_max_pool2d_nhwc(h: tf.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                               pads: _checks.Pads) -> tf.Tensor:
    """Max pooling by the contract's rule for NaN and -inf (docs/api.md, "Edges").

    The winner is chosen on a copy where NaN counts as +inf by ``tf.nn.max_pool_with_argmax``
    (strictly greater wins: the first largest); an all -inf window's winner is its first real
    cell; y is the input gathered at the winners, times NaN where the window holds a NaN. The
    gradient is TensorFlow's own (gather, mul): the winner gets dy * NaN. Substituting NaN
    by +inf in the differentiated path instead would not do: tf.where's gradient is a select,
    which gives a NaN winner 0, not NaN.
    """
    (top, bottom), (left, right) = pads
    hp = tf.pad(h, [[0, 0], [top, bottom], [left, right], [0, 0]],
                constant_values=-np.inf)  # (N, Hp, Wp, C)
    nan = tf.math.is_nan(hp)
    choose = tf.stop_gradient(tf.where(nan, tf.constant(np.inf, hp.dtype), hp))
    best, index = tf.nn.max_pool_with_argmax(choose, kernel, stride, "VALID",
                                             include_batch_in_index=True)  # (N, OH, OW, C)
    # the flat index ((n * Hp + row) * Wp + col) * C + c of each window's first real cell
    shape = tf.shape(hp, out_type=tf.int64)
    hp_, wp, c = shape[1], shape[2], shape[3]
    oh, ow = tf.shape(best, out_type=tf.int64)[1], tf.shape(best, out_type=tf.int64)[2]
    rows = tf.maximum(tf.range(oh) * stride[0], top)[None, :, None, None]
    cols = tf.maximum(tf.range(ow) * stride[1], left)[None, None, :, None]
    batch = tf.range(shape[0])[:, None, None, None]
    first = ((batch * hp_ + rows) * wp + cols) * c + tf.range(c)[None, None, None, :]
    index = tf.where(best == -np.inf, first, index)
    y = tf.gather(tf.reshape(hp, [-1]), index)  # (N, OH, OW, C)
    nan_windows = tf.nn.max_pool2d(tf.cast(nan, hp.dtype), kernel, stride, "VALID") > 0
    return y * tf.where(nan_windows, tf.constant(np.nan, hp.dtype), tf.constant(1, hp.dtype))


def _avg_pool_grad_miscounts(size: tuple[int, int], kernel: tuple[int, int],
                             stride: tuple[int, int], pads: _checks.Pads) -> bool:
    """Whether TensorFlow's CPU AvgPoolGrad miscounts a SAME window (see _avg_pool2d_nhwc):
    on an axis whose kernel exceeds the input, a window starting in the padding (start < 0)
    and ending inside the input (start + k < size). Its forward counts such a window right;
    its gradient counts the whole axis."""
    for n, k, s, (p0, p1) in zip(size, kernel, stride, pads):
        starts = range(-p0, n + p1 - k + 1, s)  # each window's first cell, padding included
        if k > n and any(start < 0 and start + k < n for start in starts):
            return True
    return False


def _avg_pool2d_nhwc(h: tf.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                     padding: object, pads: _checks.Pads, count_include_pad: bool) -> tf.Tensor:
    """h (N, H, W, C) -> (N, OH, OW, C); see avg_pool2d_forward for the padding count."""
    same = isinstance(padding, str) and padding.lower() == "same"
    if same and count_include_pad:
        padding = pads  # the same pads, TensorFlow's rule, but counted
    elif same and _avg_pool_grad_miscounts(h.shape[1:3], kernel, stride, pads):
        # TensorFlow's CPU AvgPoolGrad (float64 always, float32 when oneDNN is off: the default
        # on CPUs without AVX512_VNNI/AMX, this project's machine included) divides a SAME
        # window's gradient by the whole axis where the kernel is larger than the input and
        # the window starts in the padding but ends inside the input: [0.75, 1.083, 1.083,
        # 1.083] for [0.833, 1.167, 1.167, 0.833] (upstream tensorflow#48773; the forward is
        # right). The explicit pads, "VALID" and the count mask below give the same numbers
        # and a right gradient.
        padding = pads
    padded, tf_padding = _padded(h, padding, pads, 0.0)
    y = tf.nn.avg_pool2d(padded, kernel, stride, tf_padding)  # (N, OH, OW, C)
    if tf_padding == "VALID" and not count_include_pad:
        ones = tf.ones((1, h.shape[1], h.shape[2], 1), dtype=h.dtype)  # (1, H, W, 1)
        mask, _ = _padded(ones, pads, pads, 0.0)
        y = y / tf.nn.avg_pool2d(mask, kernel, stride, "VALID")
    return y


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride=1,
                   padding=0) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::conv2d_forward.

    ``tf.nn.conv2d`` is a cross-correlation like the contract's; it runs NHWC with
    (kH, kW, C_in, C_out) weights, hence the transposes at both edges. Without a bias
    (b = None) the tape watches x and w only.
    """
    geom = _checks.conv2d(x, w, b, stride, padding)

    def conv(x, w, b=None):
        y = _conv2d_nhwc(_to_nhwc(x), _conv_weight(w), b, geom.stride, padding, geom.pads)
        return _to_nchw(y)  # (N, F, OH, OW)

    return _forward("conv2d", conv, *((x, w) if b is None else (x, w, b)))


def conv2d_backward(dy: np.ndarray, cache: Cache, input_grad: bool = True,
                    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None]:
    """Same contract as impls/numpy/ops.py::conv2d_backward."""
    grads = _backward(dy, cache, "conv2d", input_grad)
    dx, dw, db = grads if len(grads) == 3 else (*grads, None)  # no bias: db None
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
        return _to_nchw(_max_pool2d_nhwc(_to_nhwc(x), geom.kernel, geom.stride, padding,
                                         geom.pads))

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

    def avg_pool(x):
        y = _avg_pool2d_nhwc(_to_nhwc(x), geom.kernel, geom.stride, padding, geom.pads, include)
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


def linear_backward(dy: np.ndarray, cache: Cache,
                    input_grad: bool = True) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Same contract as impls/numpy/ops.py::linear_backward."""
    dx, dw, db = _backward(dy, cache, "linear", input_grad)
    return dx, dw, db


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::relu_forward.

    TensorFlow's ReluGrad passes the gradient where x > 0 only: 0 at exactly 0, and 0 at a
    NaN input where the contract wants NaN. Where x holds NaN, the output is multiplied by a
    constant that is NaN there and 1 elsewhere: the value is unchanged, and the product's
    gradient makes dy * NaN reach ReluGrad, whose dy * (x > 0) keeps the NaN.
    """
    _checks.elementwise(x)
    nan = np.isnan(x)
    if not nan.any():
        return _forward("relu", tf.nn.relu, x)
    factor = _tensor(np.where(nan, np.nan, 1).astype(x.dtype))
    return _forward("relu", lambda x: tf.nn.relu(x) * factor, x)


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
    finite_rows = np.isfinite(logits).all(axis=1)  # (N,)
    # The fused kernels treat a -inf logit as a masked class (integer labels: a finite loss);
    # the contract makes a row with any non-finite logit NaN, loss term and gradient: a
    # constant factor NaN on that row does both through the tape.
    factor = _tensor(np.where(finite_rows, 1, np.nan).astype(logits.dtype)[:, None])
    if kind == "integer":
        classes = _tensor(labels.astype(np.int64))  # (N,)

        def per_example(z):
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes, logits=z)
    else:
        probabilities = _tensor(labels)  # (N, K)

        def per_example(z):
            return tf.nn.softmax_cross_entropy_with_logits(labels=probabilities, logits=z)

    def loss(z):
        return tf.reduce_mean(per_example(z if finite_rows.all() else z * factor))

    loss, (dlogits,) = _loss_and_grads(loss, logits)
    return loss, dlogits


def mse(pred: np.ndarray, target: np.ndarray) -> tuple[np.generic, np.ndarray]:
    """Same contract as impls/numpy/ops.py::mse."""
    _checks.mse(pred, target)
    t = _tensor(target)
    loss, (dpred,) = _loss_and_grads(lambda p: tf.reduce_mean(tf.square(p - t)), pred)
    return loss, dpred


# ---------------------------------------------------------------------------------------------
# normalisation and regularisation


def _batchnorm_nhwc(h: tf.Tensor, gamma, beta, running_mean, running_var, training: bool,
                    eps: float) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """h (N, ..., C) normalised per channel (the last axis) -> (y, mean, var).

    Training: the batch mean and BIASED variance over every other axis; inference: the running
    statistics (returned as mean and var).
    """
    if training:
        mean, var = tf.nn.moments(h, axes=list(range(h.shape.rank - 1)))  # (C,)
    else:
        mean, var = running_mean, running_var
    return tf.nn.batch_normalization(h, mean, var, beta, gamma, eps), mean, var


def _running_stats(running_mean, running_var, mean, var, n, momentum: float):
    """PyTorch's update: momentum weighs the NEW value; the variance goes in unbiased."""
    return ((1 - momentum) * running_mean + momentum * mean,
            (1 - momentum) * running_var + momentum * var * n / (n - 1))


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
    # Python floats (the checker's) take the tensors' dtype
    training, momentum, eps = _checks.batchnorm(x, gamma, beta, running_mean, running_var,
                                                training, momentum, eps)
    rm, rv = _tensor(running_mean), _tensor(running_var)  # (C,)
    channels_last = x.ndim == 4

    def normalize(x, gamma, beta):
        h = _to_nhwc(x) if channels_last else x  # (N, H, W, C) or (N, D)
        y, mean, var = _batchnorm_nhwc(h, gamma, beta, rm, rv, training, eps)
        return (_to_nchw(y) if channels_last else y), mean, var

    tape, inputs, (y, mean, var) = _trace(normalize, x, gamma, beta)
    if training:
        n = x.size // x.shape[1]  # values per channel
        new_mean, new_var = _running_stats(rm, rv, mean, var, n, momentum)
        new_running_mean, new_running_var = _numpy(new_mean), _numpy(new_var)
    else:
        new_running_mean, new_running_var = running_mean.copy(), running_var.copy()
    return _numpy(y), _cache("batchnorm", tape, inputs, y), new_running_mean, new_running_var


def batchnorm_backward(dy: np.ndarray, cache: Cache) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same contract as impls/numpy/ops.py::batchnorm_backward."""
    dx, dgamma, dbeta = _backward(dy, cache, "batchnorm")
    return dx, dgamma, dbeta


def _dropout(x: tf.Tensor, p: float, keep: tf.Tensor | None) -> tf.Tensor:
    """Training-mode inverted dropout: x * keep / (1 - p), or tf.nn.dropout without a mask."""
    if keep is not None:
        return x * keep / (1 - p)
    if p == 0:
        return tf.identity(x)
    return tf.nn.dropout(x, rate=p)


def dropout_forward(x: np.ndarray, p: float, training=True, mask: np.ndarray | None = None,
                    rng: np.random.Generator | None = None) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::dropout_forward.

    Without a mask, training uses ``tf.nn.dropout`` and TensorFlow's own random generator
    (seed it with ``tf.random.set_seed``); ``rng`` is accepted for the common signature and
    ignored. A given mask wins over p = 0: it is what makes all backends compute the same.
    """
    # p a Python float: it takes x's dtype (a NumPy float64 scalar would not)
    p, training = _checks.dropout(x, p, training, mask)
    if not training:
        fn = tf.identity
    else:
        keep = None if mask is None else _tensor(mask.astype(x.dtype))  # 0/1 in x's dtype

        def fn(x):
            return _dropout(x, p, keep)

    return _forward("dropout", fn, x)


def dropout_backward(dy: np.ndarray, cache: Cache) -> np.ndarray:
    """Same contract as impls/numpy/ops.py::dropout_backward."""
    (dx,) = _backward(dy, cache, "dropout")
    return dx


def _local_response_norm(x: tf.Tensor, size: int, alpha: float, beta: float, k: float,
                         axis: int) -> tf.Tensor:
    """x / (k + alpha / size * sum of squares over the channel window) ** beta; any layout.

    ``axis`` is the channel axis: 1 for NCHW (the ops), -1 for NHWC (the layers).
    """
    axis = axis % x.shape.rank
    c = x.shape[axis]
    # channel c's window is c - size // 2 .. c + (size - 1) // 2; channels outside [0, C) are
    # zeros, so after padding, window c starts at padded channel c
    pads = [[0, 0]] * x.shape.rank
    pads[axis] = [size // 2, (size - 1) // 2]
    squares = tf.pad(tf.square(x), pads)
    before = (slice(None),) * axis
    window_sum = tf.add_n([squares[(*before, slice(i, i + c))] for i in range(size)])
    return x / tf.pow(k + alpha / size * window_sum, beta)


def local_response_norm_forward(x: np.ndarray, size: int, alpha=1e-4, beta=0.75,
                                k=1.0) -> tuple[np.ndarray, Cache]:
    """Same contract as impls/numpy/ops.py::local_response_norm_forward.

    Composed from ops instead of ``tf.nn.local_response_normalization``, whose kernel has no
    float64 version (float32, float16 and bfloat16 only) and whose window 2 * depth_radius + 1
    cannot be even; ``lrn_params_from_tf``/``lrn_params_to_tf`` map the two parameter sets.
    Only elementwise ops, a pad, slices and a sum: channels stay on axis 1, no NHWC needed.
    """
    size, alpha, beta, k = _checks.local_response_norm(x, size, alpha, beta, k)

    def lrn(x):
        return _local_response_norm(x, size, alpha, beta, k, axis=1)

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


def _l2(weights, weight_decay: float) -> tf.Tensor:
    """weight_decay * sum of sum(w ** 2) / 2 (``tf.nn.l2_loss`` has the half in it)."""
    return weight_decay * tf.add_n([tf.nn.l2_loss(w) for w in weights])


def l2_regularization(weights, weight_decay: float):
    """Same contract as impls/numpy/ops.py::l2_regularization.

    ``tf.nn.l2_loss(w)`` is sum(w ** 2) / 2, the contract's half already in it. With no
    weights the loss is np.float64(0.0) (there is no dtype to take).
    """
    arrays, weight_decay = _checks.l2_regularization(weights, weight_decay)
    if arrays:
        loss, grads = _loss_and_grads(lambda *ws: _l2(ws, weight_decay), *arrays)
    else:
        loss, grads = np.float64(0.0), []
    if isinstance(weights, dict):
        return loss, dict(zip(weights.keys(), grads, strict=True))
    return loss, grads
