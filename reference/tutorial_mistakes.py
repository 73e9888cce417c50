"""The tutorials' mistakes as data: what each one computes, reproduced, and the catalogue.

The five tutorials this project grew from (../shared/seeds/, summarised in docs/tutorials.md)
print values that are wrong, show code whose output cannot be what the text says, and state a
few formulas that do not hold. Each such mistake is recorded here once:

- ``CATALOGUE``: one ``Mistake`` row per wrong statement (id, tutorial file, where, what the
  tutorial prints or its code gives, what is right, the mistake, and the test or vector that
  checks it). ``catalogue_table()`` renders it as the README's "The tutorials' bugs" table, and
  a test fails when the two disagree.
- Small functions that do what the tutorial's code does, mistake included (written from the
  tutorials' descriptions, not copied): a test reproduces the printed value with them and the
  correct value with ``reference.ops`` and every backend.
- The loss caps of the tutorials' clipped cross-entropies (``CAP_000``, ``CAP_002``).

Where a mistake shows on an op's inputs, its data are a vector (reference/vectors/*.json) with a
``"mistake"`` field naming the function here that reproduces it (``run_mistake``); see
reference/vectors.py for the format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

__all__ = [
    "Mistake", "CATALOGUE", "catalogue_table", "MISTAKES", "run_mistake",
    "CAP_000", "CAP_002", "CLIP_000", "ADD_000", "ADD_002",
    "dlfs_softmax", "dlfs_cross_entropy_error",
    "dlfs_relu_forward", "dlfs_relu_backward", "tutorial_conv_backward_nhwc",
    "cs231n_conv_backward_naive", "tutorial_max_pool_backward_nhwc",
    "cross_entropy_000", "cross_entropy_002", "autodiff_dlogits_000", "autodiff_dlogits_002",
    "adam_epoch_cost_000", "epoch_cost", "dlai_epoch_cost", "batch_mean_accuracy",
    "print_schedule", "broadcast_case3_as_printed", "softmax_fed_as_logits_floor",
]

# --- the clipped cross-entropies (README "Conventions": softmax cross-entropy) ---------------

# 000's softmaxloss: predictions = np.clip(softmax, 1e-12, 1 - 1e-12), loss -log(predictions + 1e-9)
CLIP_000 = 1e-12
ADD_000 = 1e-9
# 002's cross_entropy_error: -sum(t * log(y + 1e-7)) / batch (no clip: delta is added)
ADD_002 = 1e-7
# The largest loss each can report (a correct class of probability 0): -ln(1e-12 + 1e-9) and
# -ln(1e-7). The true loss has no cap (a margin of 1000 gives 1000).
CAP_000 = -math.log(CLIP_000 + ADD_000)  # 20.72226633661...
CAP_002 = -math.log(ADD_002)  # 16.11809565095...


# --- argument checks (the same "name: got ..., expected ..." errors as impls/_checks.py) ----------

def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"


def _float_array(name: str, value: object, ndims: tuple[int, ...]) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        raise TypeError(f"{name}: got {_describe(value)}, expected a float NumPy array")
    if value.ndim not in ndims:
        raise ValueError(f"{name}: got shape {value.shape}, expected "
                         f"{' or '.join(str(d) for d in ndims)} dimensions")
    return value


def _int(name: str, value: object, low: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: got {_describe(value)}, expected an integer >= {low}")
    if value < low:
        raise ValueError(f"{name}: got {value!r}, expected an integer >= {low}")
    return int(value)


def _numbers(name: str, values: object) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: got {_describe(values)}, expected a sequence of "
                        "numbers") from None
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: got {_describe(values)}, expected a non-empty 1-D sequence "
                         "of numbers")
    return array


def _labels(name: str, labels: object, logits: np.ndarray) -> np.ndarray:
    n, k = logits.shape
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        raise TypeError(f"{name}: got {_describe(labels)}, expected integer classes of "
                        f"shape ({n},)")
    if labels.shape != (n,) or (n and (labels.min() < 0 or labels.max() >= k)):
        raise ValueError(f"{name}: got {_describe(labels)}, expected {n} classes in "
                         f"[0, {k})")
    return labels


def _logits_labels(logits: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    z = _float_array("logits", logits, (2,)).astype(np.float64)
    if z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"logits: got shape {z.shape}, expected (N, K) with N, K >= 1")
    return z, _labels("labels", labels, z)


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    t = np.zeros((labels.shape[0], k))
    t[np.arange(labels.shape[0]), labels] = 1.0
    return t


def cross_entropy_000(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """000's softmaxloss: softmax, clip to [1e-12, 1 - 1e-12], loss -mean log(p + 1e-9) of the
    true class, gradient (clipped p - one-hot) / N: the loss is capped at CAP_000; the gradient
    sees the clip only as a shift of at most 1e-12 / N."""
    z, labels = _logits_labels(logits, labels)
    n = z.shape[0]
    p = np.clip(_softmax_rows(z), CLIP_000, 1.0 - CLIP_000)
    loss = -np.sum(_one_hot(labels, z.shape[1]) * np.log(p + ADD_000)) / n
    grad = p.copy()
    grad[range(n), labels] -= 1
    return float(loss), grad / n


def cross_entropy_002(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """002's SoftmaxWithLoss: loss -mean log(y + 1e-7) of the true class (capped at CAP_002),
    backward (y - t) / N on the unclipped softmax y: exactly the true gradient."""
    z, labels = _logits_labels(logits, labels)
    n = z.shape[0]
    y = _softmax_rows(z)
    t = _one_hot(labels, z.shape[1])
    loss = -np.sum(t * np.log(y + ADD_002)) / n
    return float(loss), (y - t) / n


def autodiff_dlogits_000(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """What autodiff gives through 000's loss expression: d/dz of -mean log(clip(p) + 1e-9).
    Once the true class's p is below the clip it is a constant, and the gradient is exactly 0."""
    z, labels = _logits_labels(logits, labels)
    n = z.shape[0]
    p = _softmax_rows(z)
    grad = np.zeros_like(z)
    for row, label in enumerate(labels):
        q = p[row, label]
        if CLIP_000 <= q <= 1.0 - CLIP_000:  # the clip passes the gradient only inside
            dq = -1.0 / (q + ADD_000) / n
            grad[row] = dq * q * ((np.arange(z.shape[1]) == label) - p[row])
    return grad


def autodiff_dlogits_002(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """What autodiff gives through 002's loss expression -mean log(y + 1e-7): the true gradient
    scaled by y / (y + 1e-7), which goes to 0 with y (4e-11 at a margin of 40)."""
    z, labels = _logits_labels(logits, labels)
    n = z.shape[0]
    y = _softmax_rows(z)
    grad = np.zeros_like(z)
    for row, label in enumerate(labels):
        q = y[row, label]
        grad[row] = -1.0 / (q + ADD_002) / n * q * ((np.arange(z.shape[1]) == label) - y[row])
    return grad


# --- 002's softmax and cross-entropy -------------------------------------------------------------

def dlfs_softmax(x: np.ndarray) -> np.ndarray:
    """002 §3.3 softmax as shown: C = np.max(x), exp(x - C) / np.sum(exp(x - C)), over the WHOLE
    array: on a batch (N, K) the rows share one normaliser and sum to 1 together, not each."""
    _float_array("x", x, (1, 2))
    c = np.max(x)
    exp_a = np.exp(x - c)
    return exp_a / np.sum(exp_a)


def dlfs_cross_entropy_error(y: np.ndarray, t: np.ndarray) -> float:
    """002 §4.1 batch cross_entropy_error as shown: -sum(t * log(y + 1e-7)) / batch. It takes
    one-hot t only: integer labels (N,) against y (N, K) fail to broadcast (ValueError)."""
    _float_array("y", y, (1, 2))
    if not isinstance(t, np.ndarray):
        raise TypeError(f"t: got {_describe(t)}, expected a NumPy array")
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    batch_size = y.shape[0]
    return float(-np.sum(t * np.log(y + ADD_002)) / batch_size)


# --- 002's ReLU layer ---------------------------------------------------------------------------

def dlfs_relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """002 §5.2.1 Relu.forward: mask = x <= 0, out = x.copy(), out[mask] = 1 (the bug: it
    should be 0). Returns (out, mask)."""
    _float_array("x", x, tuple(range(1, 5)))
    mask = x <= 0
    out = x.copy()
    out[mask] = 1
    return out, mask


def dlfs_relu_backward(dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """002 §5.2.1 Relu.backward: dout[mask] = 0, dx = dout. Right values, but it overwrites the
    caller's dout in place and returns that same array."""
    _float_array("dout", dout, tuple(range(1, 5)))
    if not isinstance(mask, np.ndarray) or mask.dtype != bool or mask.shape != dout.shape:
        raise ValueError(f"mask: got {_describe(mask)}, expected a bool array of shape "
                         f"{dout.shape}")
    dout[mask] = 0
    return dout


# --- the deeplearning.ai-style NHWC loops (000, 003, 004) and cs231n's (001) ---------------------

def _conv_args(dy: object, x: object, w: object, stride: object, pad: object, dy_name: str,
               x_name: str, channels_axis: int, filters_axis: int, in_axis: int) -> None:
    for name, value in ((dy_name, dy), (x_name, x), ("w", w)):
        _float_array(name, value, (4,))
    _int("stride", stride, 1)
    _int("pad", pad, 0)
    if x.shape[channels_axis] != w.shape[in_axis]:
        raise ValueError(f"w: got {_describe(w)}, expected {x.shape[channels_axis]} input "
                         f"channels like {x_name}")
    if dy.shape[channels_axis] != w.shape[filters_axis] or dy.shape[0] != x.shape[0]:
        raise ValueError(f"{dy_name}: got {_describe(dy)}, expected {x.shape[0]} images and "
                         f"{w.shape[filters_axis]} channels (one per filter)")


def tutorial_conv_backward_nhwc(dz: np.ndarray, a_prev: np.ndarray, w: np.ndarray,
                                stride: int, pad: int,
                                stride_in_backward: bool = True) -> tuple[np.ndarray, ...]:
    """conv_backward as 000 (Convolution.backward), 003 and 004 write it, NHWC, W (f, f, C, F).

    Windows start at h * stride (000, 003) or at h (004: ``stride_in_backward=False``, wrong
    for stride > 1), and each image's gradient is cropped with ``da_prev_pad[pad:-pad,
    pad:-pad, :]``, which is empty at pad 0: assigning it raises ValueError ("could not
    broadcast input array from shape (0,0,C)").
    """
    _conv_args(dz, a_prev, w, stride, pad, "dz", "a_prev", channels_axis=3, filters_axis=3,
               in_axis=2)
    m = a_prev.shape[0]
    f, _, _, n_c = w.shape
    _, n_h, n_w, _ = dz.shape
    step = stride if stride_in_backward else 1
    da_prev = np.zeros(a_prev.shape)
    dw = np.zeros(w.shape)
    db = np.zeros((1, 1, 1, n_c))
    a_prev_pad = np.pad(a_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    da_prev_pad = np.pad(da_prev, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    for i in range(m):
        a_pad, da_pad = a_prev_pad[i], da_prev_pad[i]
        for h in range(n_h):
            for col in range(n_w):
                for c in range(n_c):
                    top, left = h * step, col * step
                    window = a_pad[top:top + f, left:left + f, :]
                    da_pad[top:top + f, left:left + f, :] += w[:, :, :, c] * dz[i, h, col, c]
                    dw[:, :, :, c] += window * dz[i, h, col, c]
                    db[:, :, :, c] += dz[i, h, col, c]
        da_prev[i, :, :, :] = da_pad[pad:-pad, pad:-pad, :]  # the tutorials' crop
    return da_prev, dw, db


def cs231n_conv_backward_naive(dout: np.ndarray, x: np.ndarray, w: np.ndarray,
                               stride: int, pad: int) -> tuple[np.ndarray, ...]:
    """001 §1.1.3 conv_backward_naive (NCHW): right for pad >= 1; at pad 0 its last step
    ``dx = dx_pad[:, :, pad:-pad, pad:-pad]`` returns an empty (N, C, 0, 0) array, silently."""
    _conv_args(dout, x, w, stride, pad, "dout", "x", channels_axis=1, filters_axis=0,
               in_axis=1)
    n, _, h, wd = x.shape
    f, _, hh, ww = w.shape
    h_out = 1 + (h + 2 * pad - hh) // stride
    w_out = 1 + (wd + 2 * pad - ww) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for i in range(h_out):
        for j in range(w_out):
            rows = slice(i * stride, i * stride + hh)
            cols = slice(j * stride, j * stride + ww)
            window = x_pad[:, :, rows, cols]
            for k in range(f):
                dw[k] += np.sum(window * dout[:, k, i, j][:, None, None, None], axis=0)
            for image in range(n):
                dx_pad[image, :, rows, cols] += np.sum(
                    w * dout[image, :, i, j][:, None, None, None], axis=0)
    return dx_pad[:, :, pad:-pad, pad:-pad], dw, db


def tutorial_max_pool_backward_nhwc(da: np.ndarray, a_prev: np.ndarray, f: int, stride: int,
                                    stride_in_backward: bool = True) -> np.ndarray:
    """Max-pool backward as 000, 001, 003 and 004 write it: mask = (window == max(window)), so
    every tied maximum gets the whole gradient (a window of k equal maxima passes k * dy back,
    though moving all of them by eps moves the output by eps only); 004's pool_backward also
    starts its windows at h (``stride_in_backward=False``)."""
    _float_array("da", da, (4,))
    _float_array("a_prev", a_prev, (4,))
    _int("f", f, 1)
    _int("stride", stride, 1)
    if da.shape[0] != a_prev.shape[0] or da.shape[3] != a_prev.shape[3]:
        raise ValueError(f"da: got {_describe(da)}, expected {a_prev.shape[0]} images and "
                         f"{a_prev.shape[3]} channels like a_prev")
    m = a_prev.shape[0]
    _, n_h, n_w, n_c = da.shape
    step = stride if stride_in_backward else 1
    da_prev = np.zeros_like(a_prev)
    for i in range(m):
        for h in range(n_h):
            for col in range(n_w):
                for c in range(n_c):
                    top, left = h * step, col * step
                    window = a_prev[i, top:top + f, left:left + f, c]
                    mask = window == np.max(window)
                    da_prev[i, top:top + f, left:left + f, c] += mask * da[i, h, col, c]
    return da_prev


# --- training-loop bookkeeping ----------------------------------------------------------------

def adam_epoch_cost_000(batch_losses: Sequence[float]) -> float:
    """000's Adam.minimize: per minibatch ``loss, grads = self.model.fit(...)`` then
    ``loss += loss``: the printed epoch cost is twice the LAST minibatch's loss."""
    batch_losses = _numbers("batch_losses", batch_losses)
    loss = 0.0
    for batch_loss in batch_losses:
        loss = float(batch_loss)  # loss, grads = self.model.fit(minibatch_X, minibatch_Y)
        loss += loss
    return loss


def epoch_cost(batch_losses: Sequence[float], batch_sizes: Sequence[int]) -> float:
    """The mean loss over the epoch's examples: each minibatch's mean loss weighted by its size."""
    losses = _numbers("batch_losses", batch_losses)
    sizes = _numbers("batch_sizes", batch_sizes)
    if sizes.shape != losses.shape or np.any(sizes < 1) or np.any(sizes != np.round(sizes)):
        raise ValueError(f"batch_sizes: got {_describe(batch_sizes)}, expected "
                         f"{losses.size} positive integers (one per batch loss)")
    return float(np.dot(losses, sizes) / sizes.sum())


def dlai_epoch_cost(batch_costs: Sequence[float], m: int, minibatch_size: int) -> float:
    """004's model(): ``minibatch_cost += temp_cost / num_minibatches`` with num_minibatches =
    int(m / minibatch_size), while random_mini_batches (the course's cnn_utils, not shown in the
    text) also yields the last, partial batch (1080 / 64: 17 batches, divided by 16), every
    batch weighted alike."""
    batch_costs = _numbers("batch_costs", batch_costs)
    _int("minibatch_size", minibatch_size, 1)
    _int("m", m, minibatch_size)
    num_minibatches = int(m / minibatch_size)
    cost = 0.0
    for temp_cost in batch_costs:
        cost += temp_cost / num_minibatches
    return cost


def batch_mean_accuracy(correct: np.ndarray, batch_size: int) -> float:
    """003's val/test accuracy: the mean of the per-batch accuracies, the last (short) batch
    weighted like a full one; the accuracy is mean(correct)."""
    correct = _numbers("correct", correct)
    if np.any((correct != 0) & (correct != 1)):
        raise ValueError(f"correct: got {_describe(correct)}, expected 0/1 (or bool) per "
                         "example")
    _int("batch_size", batch_size, 1)
    accs = [correct[i:i + batch_size].mean() for i in range(0, correct.shape[0], batch_size)]
    return float(np.mean(accs))


def print_schedule(iters: int, train_size: int, batch_size: int) -> list[int]:
    """The iterations at which 002's two-layer-net loops print (``i % iter_per_epoch == 0`` with
    iter_per_epoch = max(train_size / batch_size, 1), a float)."""
    for name, value in (("iters", iters), ("train_size", train_size),
                        ("batch_size", batch_size)):
        _int(name, value, 1)
    iter_per_epoch = max(train_size / batch_size, 1)
    return [i for i in range(iters) if i % iter_per_epoch == 0]


def broadcast_case3_as_printed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """002 §1.2.2 Case 3, as printed: a * b broadcast over rows, except that the second row's
    first product is taken with the second column's factor (6 * 2 = 12 where 6 * 10 = 60)."""
    _float_array("a", a, (2,))
    _float_array("b", b, (1,))
    if a.shape != (2, 2) or b.shape != (2,):
        raise ValueError(f"a, b: got shapes {a.shape} and {b.shape}, expected (2, 2) and (2,)")
    out = a * b
    out[1, 0] = a[1, 0] * b[1]
    return out


def softmax_fed_as_logits_floor(num_classes: int) -> float:
    """003's CIFAR-10 loss feeds softmax probabilities to softmax_cross_entropy_with_logits: at
    best (probability 1 on the true class) the loss is -log(e / (e + K - 1)) = ln(1 + (K-1)/e)."""
    _int("num_classes", num_classes, 2)
    return math.log(1.0 + (num_classes - 1) / math.e)


# --- running a vector's mistake -------------------------------------------------------------------

def _relu_sets_one(inputs: dict, params: dict) -> dict:
    out, mask = dlfs_relu_forward(inputs["x"])
    dout = inputs["dy"].copy()
    return {"y": out, "dx": dlfs_relu_backward(dout, mask)}


def _nchw_to_nhwc(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 2, 3, 1)


def _conv_backward(stride_in_backward: bool) -> Callable[[dict, dict], dict]:
    def run(inputs: dict, params: dict) -> dict:
        x, w = inputs["x"], inputs["w"]
        dx, dw, db = tutorial_conv_backward_nhwc(
            _nchw_to_nhwc(inputs["dy"]), _nchw_to_nhwc(x), w.transpose(2, 3, 1, 0),
            params["stride"], params["padding"], stride_in_backward)
        return {"dx": dx.transpose(0, 3, 1, 2), "dw": dw.transpose(3, 2, 0, 1),
                "db": db.reshape(-1)}
    return run


def _max_pool_backward(stride_in_backward: bool) -> Callable[[dict, dict], dict]:
    def run(inputs: dict, params: dict) -> dict:
        dx = tutorial_max_pool_backward_nhwc(
            _nchw_to_nhwc(inputs["dy"]), _nchw_to_nhwc(inputs["x"]), params["kernel_size"],
            params["stride"], stride_in_backward)
        return {"dx": dx.transpose(0, 3, 1, 2)}
    return run


def _cross_entropy(fn: Callable, autodiff: Callable) -> Callable[[dict, dict], dict]:
    def run(inputs: dict, params: dict) -> dict:
        loss, dlogits = fn(inputs["logits"], inputs["labels"])
        return {"loss": loss, "dlogits": dlogits,
                "autodiff_dlogits": autodiff(inputs["logits"], inputs["labels"])}
    return run


def _softmax_fed_as_logits(inputs: dict, params: dict) -> dict:
    from reference import ops  # the oracle, on the probabilities the tutorial feeds it

    probabilities, _ = ops.softmax_forward(inputs["logits"])
    loss, dlogits = ops.softmax_cross_entropy(probabilities, inputs["labels"])
    return {"loss": loss, "dlogits": dlogits}


# name -> function(inputs, params) -> outputs, for vectors with a "mistake" field
MISTAKES: dict[str, Callable[[dict, dict], dict]] = {
    "dlfs_softmax": lambda inputs, params: {"y": dlfs_softmax(inputs["x"])},
    "dlfs_relu": _relu_sets_one,
    "tutorial_conv_backward": _conv_backward(True),
    "dlai_conv_backward": _conv_backward(False),
    "tutorial_max_pool_backward": _max_pool_backward(True),
    "dlai_max_pool_backward": _max_pool_backward(False),
    "cross_entropy_000": _cross_entropy(cross_entropy_000, autodiff_dlogits_000),
    "cross_entropy_002": _cross_entropy(cross_entropy_002, autodiff_dlogits_002),
    "softmax_fed_as_logits": _softmax_fed_as_logits,
}


def run_mistake(vector: dict, inputs: dict | None = None) -> dict:
    """The outputs the tutorial's code gives on the vector's inputs (``vector["mistake"]``
    names the function in MISTAKES), plus the inputs, as reference/vectors.py's ``run``."""
    from reference import vectors

    spec = vector.get("mistake")
    if not isinstance(spec, dict) or spec.get("function") not in MISTAKES:
        raise ValueError(f"vector: got mistake {spec!r}, expected {{'function': one of "
                         f"{sorted(MISTAKES)}}}")
    inputs = dict(vectors.build_inputs(vector) if inputs is None else inputs)
    given = {name: a for name, a in inputs.items() if isinstance(a, np.ndarray)}
    return {**given, **MISTAKES[spec["function"]](inputs, vector.get("params", {}))}


# --- the catalogue ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mistake:
    """One wrong statement of a tutorial. ``test``: the vector (``vector NAME``) and/or the
    test in parity_tests/test_tutorial_mistakes.py (``test_NAME``) that checks it."""

    id: str
    tutorial: str
    where: str
    prints: str
    right: str
    mistake: str
    test: str


T000, T001, T002 = "000_946d3da0276e7cdf", "001_a0953f4bfa135582", "002_28b914d1e690ba9e"
T003, T004 = "003_6a6890ac591960e3", "004_e59cb968dc66c9f4"

CATALOGUE: tuple[Mistake, ...] = (
    Mistake("dlai-conv-single-step-bias", T004, "§1.2 conv_single_step test",
            "Z = -23.16021220252078",
            "-6.999089450680221 (sum(a * W) + b)",
            "np.sum(a * W + b): the bias is added to each of the 4·4·3 = 48 products",
            "vector dlai_conv_single_step (b × 48 reproduces the print)"),
    Mistake("dlai-conv-forward-mean", T004, "§1.3 conv_forward test",
            "np.mean(Z) = 0.15585932488906465",
            "0.0028129462864862967",
            "conv_single_step's bias added f·f·C = 12 times",
            "vector dlai_conv_forward (b × 12)"),
    Mistake("dlai-conv-backward-means", T004, "§1.4 conv_backward test",
            "dA_mean = 9.608990675868995, dW_mean = 10.581741275547566, "
            "db_mean = 76.37106919563735",
            "4.1145817049149835, 9.203677199014168, 1.3783436803789542",
            "its upstream dZ is the forward's Z, which carries the 12-fold bias",
            "vector dlai_conv_backward (b × 12)"),
    Mistake("dlai-backward-ignores-stride", T004, "§1.4 conv_backward, §5.2 pool_backward",
            "(nothing: the tests use stride 1)",
            "windows start at h·stride, w·stride",
            "vert_start = h, horiz_start = w: at stride 2 the gradient goes to the wrong cells",
            "vectors tutorial_conv_backward_stride2, tutorial_max_pool_backward_stride2"),
    Mistake("dlfs-im2col-row", T002, "§9.3 im2col unit test",
            "row 5 with 13 numbers: [5. 4. 0. 2. 0. 2. 0. 0. 3. 2. 0. 0. 4.]",
            "[5, 4, 0, 2, 0, 2, 0, 3, 2, 0, 0, 4]",
            "a transcription typo ('0. 0. 3.' for '0. 3.')",
            "vector dlfs_im2col"),
    Mistake("cs231n-correct-out-brackets", T001, "§1.1.2 conv_forward_naive check",
            "correct_out = np.array([[[[[-0.08759809, ... (five brackets open, four close)",
            "the (2, 3, 2, 2) array its numbers form",
            "a transcription typo: not valid Python",
            "vector cs231n_conv_forward_naive"),
    Mistake("dlfs-relu-forward-writes-one", T002, "§5.2.1 Relu.forward",
            "out[self.mask] = 1: every x <= 0 comes out as 1",
            "0 where x <= 0; backward dout[mask] = 0 is right",
            "1 written for 0 in the forward (the backward is right but overwrites the caller's "
            "dout in place)",
            "vector dlfs_relu_forward_writes_one; test_dlfs_relu_backward_overwrites_dout"),
    Mistake("002-softmax-whole-batch", T002, "§3.3 softmax (used by §4.4, §5.5 on batches)",
            "train losses 0.143 to 0.257 (§4.4) with this softmax on batches of 100",
            "a softmax per row; with one normaliser for the whole batch the mean cross-entropy "
            "is at least ln 100 = 4.61, so those losses cannot come from it",
            "np.max(x) and np.sum(exp_a) over the whole array, not per row",
            "vector dlfs_softmax_whole_array; test_002_batch_softmax_loss_floor"),
    Mistake("002-cross-entropy-integer-labels", T002, "§4.1 cross_entropy_error (batch), "
            "§6.6, §7.2",
            "(figures only) the optimizer and weight-decay runs load MNIST without "
            "one_hot_label",
            "a loss that takes integer labels (SoftmaxWithLoss.backward does)",
            "-sum(t * log(y + 1e-7)): integer labels (128,) against y (128, 10) raise "
            "ValueError",
            "test_002_cross_entropy_integer_labels"),
    Mistake("000-epoch-cost-loss-plus-loss", T000, "Adam.minimize",
            "Cost after epoch i: 2 × the last minibatch's loss",
            "the mean loss over the epoch's minibatches (weighted by their sizes)",
            "loss, grads = fit(...) then loss += loss: the loop variable is overwritten and "
            "doubled",
            "test_000_epoch_cost_is_twice_the_last_batch"),
    Mistake("000-unpad-empty-at-pad-0", T000, "Convolution.backward",
            "ValueError at pad 0 (the network uses pad 2, so it never shows)",
            "dA_prev = the padded gradient without its pad rows/columns (all of it at pad 0)",
            "da_prev_pad[pad:-pad, pad:-pad, :] is empty when pad = 0",
            "vector tutorial_conv_backward_pad0; test_unpad_at_pad_0"),
    Mistake("001-unpad-empty-at-pad-0", T001, "§1.1.3 conv_backward_naive",
            "an empty dx of shape (N, C, 0, 0) at pad 0, silently",
            "dx shaped like x",
            "dx = dx_pad[:, :, pad:-pad, pad:-pad] is empty when pad = 0",
            "vector tutorial_conv_backward_pad0; test_unpad_at_pad_0"),
    Mistake("003-unpad-empty-at-pad-0", T003, "§6.1.2 conv_backward",
            "ValueError at pad 0",
            "dA_prev shaped like A_prev",
            "da_prev_pad[pad:-pad, pad:-pad, :] is empty when pad = 0",
            "vector tutorial_conv_backward_pad0; test_unpad_at_pad_0"),
    Mistake("004-unpad-empty-at-pad-0", T004, "§1.4 conv_backward",
            "ValueError at pad 0 (the test uses pad 2)",
            "dA_prev shaped like A_prev",
            "da_prev_pad[pad:-pad, pad:-pad, :] is empty when pad = 0",
            "vector tutorial_conv_backward_pad0; test_unpad_at_pad_0"),
    Mistake("max-pool-backward-ties", T000 + ", " + T001 + ", " + T003 + ", " + T004,
            "create_mask_from_window / max_pool_backward_naive",
            "every tied maximum gets the whole dy (a window [[3, 3], [1, 3]] passes back 3 dy)",
            "one cell gets dy (here: the first maximum), so the gradient sums to dy",
            "mask = (window == max(window)) marks all the ties",
            "vector tutorial_max_pool_backward_ties"),
    Mistake("002-mlp-output-impossible", T002, "§4.4 train_neuralnet.py",
            "6 lines, the first 'train acc, test acc, loss | 0.9361, 0.9374, ...'",
            "17 lines (i = 0, 600, ..., 9600), the first after one SGD step from std-0.01 "
            "weights: near chance (that network gives every image the same class; shown on "
            "random images)",
            "the output is not that of this loop (10,000 iterations, iter_per_epoch 600)",
            "test_002_print_schedules"),
    Mistake("002-mlp-output-other-trainer", T002, "§5.7 two-layer net (computational graph)",
            "'train loss:0.933…', '=====Final Test Accuracy===== test acc:0.9939', "
            "'Saved Network Parameters!'",
            "17 lines of 'train_acc test_acc' (the loop's only print)",
            "the output belongs to a different trainer (the format of Deep Learning from "
            "Scratch's Trainer and CNN scripts); nothing in this loop prints a loss, a final "
            "accuracy or saves parameters",
            "test_002_print_schedules"),
    Mistake("002-broadcast-case3", T002, "§1.2.2 broadcasting, Case 3",
            "[[3, 0], [6, 5]] * [10, 2] = [[30, 0], [12, 10]]",
            "[[30, 0], [60, 10]]",
            "6 × 2 written for 6 × 10",
            "test_002_broadcast_case3"),
    Mistake("002-gradient-points-to-minimum", T002, "§4.2.2 numerical gradient test",
            "the gradient at (3, 4) points toward the minimum (0, 0), 'so it is positive'; "
            "prints [6.8.]",
            "(6, 8) points away from (0, 0) (its dot product with (-3, -4) is -50); "
            "-∇f points to the minimum; numpy prints [6. 8.]",
            "gradient and descent direction confused",
            "test_002_gradient_points_away_from_minimum"),
    Mistake("002-im2col-always-larger", T002, "§9.3 im2col",
            "the unrolled input 'is always larger than before'",
            "1×1 windows at stride 2 unroll a 4×4 image to 4 numbers",
            "true only when windows overlap",
            "vector dlfs_im2col_can_shrink"),
    Mistake("000-cross-entropy-cap", T000, "softmaxloss",
            "loss never above 20.72 (-ln(1e-12 + 1e-9)); gradient (clip(p) - t) / N",
            "no cap (a margin of 40 gives 40); the analytic gradient is fine (off by at most "
            "1e-12 / N); autodiff through np.clip gives exactly 0 once p < 1e-12",
            "clip at 1e-12 and add 1e-9 inside the log",
            "vector tutorial_cross_entropy_clip_000; test_autodiff_through_the_clip"),
    Mistake("002-cross-entropy-cap", T002, "§4.1 cross_entropy_error, §5.5 SoftmaxWithLoss",
            "loss never above 16.12 (-ln(1e-7)); backward (y - t) / N",
            "no cap; the analytic backward is exactly right; autodiff through log(y + 1e-7) "
            "scales the gradient by y / (y + 1e-7) (4e-11 at a margin of 40)",
            "delta = 1e-7 added inside the log",
            "vector tutorial_cross_entropy_clip_002; test_autodiff_through_the_clip"),
    Mistake("003-edge-operator-arithmetic", T003, "§3.1 edge operator example",
            "200×1 + 199×1 + 189×1 + 203×0 + 23×0 + 34×0 + 177×(−1) + 12×(−1) + 22×(−1) = 328",
            "377",
            "an arithmetic slip: 328 is 49 less than the sum of the nine printed terms (the "
            "figure's pixel values are not in the text)",
            "test_003_edge_operator_sum"),
    Mistake("003-bias-after-relu", T003, "§6.2 conv2d (and §4's add(conv, b) notation)",
            "tf.add(tf.nn.relu(conv), b): where the conv is negative the output is b, below 0 "
            "for b < 0",
            "relu(conv + b) >= 0",
            "the bias is added after the activation",
            "test_003_bias_after_relu"),
    Mistake("003-softmax-fed-as-logits", T003, "§6.2 build_model / loss",
            "tf.nn.softmax(fc) passed as logits to softmax_cross_entropy_with_logits_v2",
            "logits into the loss: a confident right answer costs about 0",
            "softmax applied twice: the loss can never fall below ln(1 + 9/e) = 1.4612 "
            "(10 classes)",
            "vector tutorial_softmax_fed_as_logits"),
    Mistake("003-100-iterations", T003, "§6.2 training",
            "'we only iterated 100 times'",
            "100 epochs of ceil(49000 / 64) = 766 steps: 76,600 iterations",
            "epochs called iterations",
            "test_003_iterations_and_batch_mean_accuracy"),
    Mistake("003-batch-mean-accuracy", T003, "§6.2 train(): val_acc, test_acc",
            "test accuracy 69.7 % as the mean of per-batch accuracies",
            "the fraction of test images right: the 157th batch holds 16 images, not 64, and "
            "the two can differ by up to 0.0048",
            "acc summed per batch and divided by the number of batches",
            "test_003_iterations_and_batch_mean_accuracy"),
    Mistake("004-epoch-cost-divisor", T004, "§5 model(): minibatch_cost",
            "the cost per epoch, e.g. 'cost 1.9082637503743172' at epoch 0",
            "the mean over the 1080 images: 16 batches of 64 and one of 56",
            "each of the 17 batch costs (the course's random_mini_batches, not shown, keeps "
            "the partial last batch) divided by int(1080 / 64) = 16: 17/16 of the mean "
            "for equal batch costs",
            "test_004_epoch_cost_divisor"),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def catalogue_table(catalogue: Sequence[Mistake] = CATALOGUE) -> str:
    """The catalogue as the Markdown table of README "## The tutorials' bugs"."""
    if not all(isinstance(row, Mistake) for row in catalogue):
        raise TypeError(f"catalogue: got {_describe(catalogue)}, expected a sequence of Mistake")
    names = [f.name for f in fields(Mistake)]
    header = "| " + " | ".join(names) + " |"
    rule = "| " + " | ".join("---" for _ in names) + " |"
    rows = []
    for row in catalogue:
        cells = [f"`{row.id}`", f"`{row.tutorial}`" if "," not in row.tutorial
                 else ", ".join(f"`{t.strip()}`" for t in row.tutorial.split(",")),
                 row.where, row.prints, row.right, row.mistake,
                 re.sub(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+)\b", r"`\1`", row.test)]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join([header, rule, *rows])
