"""Hypothesis strategies over the whole argument space of every op of docs/api.md.

The case table (cases.py) samples the geometry space on a grid; these strategies search it.
Each draws an ``Example``: the op, its input arrays (float64 values that are exact in float32,
so the float32 run, the float64 run and the reference all see the same numbers), its
hyperparameters, the seed of the upstream gradient and a memory layout. Edges are drawn on
purpose, not left to chance: N = 0 and 1, 1x1 images, one input channel, kernels as large as
the padded input, output heights or widths of 1, every padding form (int, pair, asymmetric
pairs of pairs, "same", "valid"), per-axis strides, convs without bias (b = None), exact ties
in max pooling, zeros at ReLU's kink, logits far apart (softmax stability), and inputs in
Fortran order, with negative strides, read-only or as broadcast views.

Sizes stay small (N <= 3, C <= 3, outputs <= 4 x 4, kernels <= 5): the reference is loops, and the
defects found so far live in the geometry, not in the size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

# How the arrays of an example are laid out in memory. The values are the same in every
# layout except "broadcast", whose arrays repeat their first row (stride 0 along axis 0).
LAYOUTS = ("C", "fortran", "negative_strides", "read_only", "broadcast")


@dataclass
class Example:
    op: str
    arrays: dict[str, np.ndarray | None]  # positional array arguments in order, float64 /
    # int64; None for conv2d's b when there is no bias
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0  # of the upstream gradient
    layout: str = "C"

    def key(self) -> str:
        """A digest of everything that determines the result (for memoising the reference)."""
        h = hashlib.sha256(f"{self.op}|{self.params!r}|{self.seed}|{self.layout}".encode())
        for name, a in self.arrays.items():
            if a is None:
                h.update(f"|{name}None".encode())
                continue
            h.update(f"|{name}{a.shape}{a.dtype.str}".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:  # what Hypothesis prints for a falsifying example
        shapes = {name: None if a is None else a.shape for name, a in self.arrays.items()}
        return (f"Example(op={self.op!r}, shapes={shapes}, params={self.params!r}, "
                f"seed={self.seed}, layout={self.layout!r})")


# Arrays that keep their exact values and memory layout: integer labels, probability rows
# (which must sum to exactly 1), 0/1 masks.
UNTOUCHED = {"labels", "mask"}


def laid_out(example: Example, dtype: str | np.dtype) -> dict[str, np.ndarray]:
    """The example's arrays in ``dtype`` (labels and masks as drawn) and in its layout."""
    out = {}
    for name, a in example.arrays.items():
        if a is None or name in UNTOUCHED or not np.issubdtype(a.dtype, np.floating):
            out[name] = a
            continue
        out[name] = _layout(a.astype(dtype), example.layout)
    if example.op == "dropout":
        out["mask"] = example.arrays["mask"].astype(dtype)
    if example.op == "softmax_cross_entropy" and example.arrays["labels"].dtype.kind == "f":
        out["labels"] = example.arrays["labels"].astype(dtype)
    return out


def _layout(a: np.ndarray, layout: str) -> np.ndarray:
    if layout == "C":
        return a
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "negative_strides":
        return np.flip(np.flip(a).copy())  # the same values, every stride negative
    if layout == "read_only":
        a = a.copy()
        a.flags.writeable = False
        return a
    if layout == "broadcast":
        if a.ndim == 0 or a.shape[0] == 0:
            return a
        return np.broadcast_to(a[:1], a.shape)  # read-only, stride 0 along axis 0
    raise ValueError(f"layout: got {layout!r}, expected one of {LAYOUTS}")


def upstream(example: Example, shape: tuple[int, ...], dtype: str | np.dtype) -> np.ndarray:
    """The upstream gradient dy for the example's backward, float32-exact."""
    rng = np.random.default_rng(example.seed)
    return rng.standard_normal(shape).astype(np.float32).astype(dtype)


# ---------------------------------------------------------------------------------------------
# values


def _exact32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def _values(rng: np.random.Generator, shape: tuple[int, ...], kind: str) -> np.ndarray:
    if kind == "normal":
        return _exact32(rng.standard_normal(shape))
    if kind == "wide":  # far apart: softmax/log-softmax stability, sigmoid/tanh saturation
        return _exact32(rng.standard_normal(shape) * 40)
    if kind == "ties":  # small integers: many exact ties in every window, exact zeros
        return rng.integers(-2, 3, shape).astype(np.float64)
    if kind == "distinct":  # a permutation of evenly spaced values: no two equal
        size = int(np.prod(shape))
        return _exact32((rng.permutation(size).reshape(shape) + 0.5) / max(size, 1) * 4 - 2)
    if kind == "positive":
        return _exact32(rng.uniform(0.5, 1.5, shape))
    raise ValueError(f"kind: got {kind!r}")


seeds = st.integers(0, 2**32 - 1)
layouts = st.sampled_from(LAYOUTS)
batch = st.integers(0, 3)  # N = 0 and 1 are the edges


@st.composite
def _pair_or_int(draw, low: int, high: int):
    """An int or an (h, w) pair, each in [low, high]."""
    if draw(st.booleans()):
        return draw(st.integers(low, high))
    return (draw(st.integers(low, high)), draw(st.integers(low, high)))


def _as_pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    # TensorFlow's SAME rule, written again here: the test must not borrow the checker's
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@st.composite
def _padding(draw, kernel: tuple[int, int], max_pad: tuple[int, int]):
    """A padding argument of any form with every explicit pad in [0, max_pad] per axis."""
    form = draw(st.sampled_from(["int", "pair", "pairs", "same", "valid"]))
    if form in ("same", "valid"):
        return draw(st.sampled_from([form, form.upper()])) if form == "same" else form
    if form == "int":
        return draw(st.integers(0, min(max_pad)))
    if form == "pair":
        return (draw(st.integers(0, max_pad[0])), draw(st.integers(0, max_pad[1])))
    return ((draw(st.integers(0, max_pad[0])), draw(st.integers(0, max_pad[0]))),
            (draw(st.integers(0, max_pad[1])), draw(st.integers(0, max_pad[1]))))


def _pads(padding, size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]):
    if isinstance(padding, str):
        if padding.lower() == "valid":
            return (0, 0), (0, 0)
        return tuple(_same_pads(s, k, st_) for s, k, st_ in zip(size, kernel, stride))
    if isinstance(padding, int):
        return (padding, padding), (padding, padding)
    if isinstance(padding[0], int):
        return (padding[0], padding[0]), (padding[1], padding[1])
    return tuple(tuple(p) for p in padding)


# Drawn more often than their share: one channel, an output of height or width 1, stride 1
# along one axis only. The audit's TensorFlow defect needed all of them at once.
channels = st.sampled_from([1, 1, 2, 3])
out_sizes = st.sampled_from([1, 1, 2, 3, 4])


@st.composite
def _window_geometry(draw, pool: bool):
    """(kernel, stride, padding, (H, W)) of a valid window op.

    The kernel, stride, padding and OUTPUT size come first and the image size is derived, so
    that outputs of 1 and kernels as large as the padded input are drawn on purpose rather than
    by chance. Pools keep each pad at most kernel // 2 (the contract's rule).
    """
    kernel = _as_pair(draw(_pair_or_int(1, 5)))
    if pool and draw(st.booleans()):
        stride = None
        strides = kernel
    else:
        stride = draw(_pair_or_int(1, 3))
        strides = _as_pair(stride)
    max_pad = (kernel[0] // 2, kernel[1] // 2) if pool else (2, 2)
    padding = draw(_padding(kernel, max_pad))
    size = []
    for axis in range(2):
        k, s, out = kernel[axis], strides[axis], draw(out_sizes)
        if isinstance(padding, str) and padding.lower() == "same":
            size.append((out - 1) * s + draw(st.integers(1, s)))  # ceil(H / s) = out
            continue
        p0, p1 = _pads(padding, (1, 1), kernel, (1, 1))[axis]  # "valid": (0, 0)
        # floor((H + p0 + p1 - k) / s) + 1 = out for H in this range (at least 1 row)
        size.append(max(1, (out - 1) * s + k - p0 - p1 + draw(st.integers(0, s - 1))))
    if kernel[0] == kernel[1] and draw(st.booleans()):
        kernel_arg = kernel[0]
    else:
        kernel_arg = kernel
    return kernel_arg, stride, padding, tuple(size), strides


# ---------------------------------------------------------------------------------------------
# one strategy per op


@st.composite
def conv2d(draw):
    kernel, stride, padding, (h, w), _ = draw(_window_geometry(pool=False))
    kh, kw = _as_pair(kernel)
    n, c, f = draw(batch), draw(channels), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(seeds))
    arrays = {"x": _values(rng, (n, c, h, w), "normal"),
              "w": _values(rng, (f, c, kh, kw), "normal"),
              # a conv without bias (b = None, the backward's db None) a quarter of the time
              "b": None if draw(st.integers(0, 3)) == 0 else _values(rng, (f,), "normal")}
    return Example("conv2d", arrays, {"stride": stride, "padding": padding}, draw(seeds),
                   draw(layouts))


@st.composite
def max_pool2d(draw):
    kernel, stride, padding, (h, w), _ = draw(_window_geometry(pool=True))
    n, c = draw(batch), draw(channels)
    kind = draw(st.sampled_from(["distinct", "ties", "normal"]))
    rng = np.random.default_rng(draw(seeds))
    arrays = {"x": _values(rng, (n, c, h, w), kind)}
    params = {"kernel_size": kernel, "stride": stride, "padding": padding}
    return Example("max_pool2d", arrays, params, draw(seeds), draw(layouts))


@st.composite
def avg_pool2d(draw):
    kernel, stride, padding, (h, w), _ = draw(_window_geometry(pool=True))
    n, c = draw(batch), draw(channels)
    rng = np.random.default_rng(draw(seeds))
    params = {"kernel_size": kernel, "stride": stride, "padding": padding,
              "count_include_pad": draw(st.booleans())}
    return Example("avg_pool2d", {"x": _values(rng, (n, c, h, w), "normal")}, params,
                   draw(seeds), draw(layouts))


@st.composite
def linear(draw):
    n = draw(batch)
    if draw(st.booleans()):
        trailing = (draw(st.integers(1, 8)),)  # (N, D)
    else:
        trailing = tuple(draw(st.integers(1, 3)) for _ in range(3))  # (N, C, H, W), flattened
    out = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(seeds))
    d = int(np.prod(trailing))
    arrays = {"x": _values(rng, (n, *trailing), "normal"),
              "w": _values(rng, (out, d), "normal"), "b": _values(rng, (out,), "normal")}
    return Example("linear", arrays, {}, draw(seeds), draw(layouts))


def _any_shape(draw, min_rank: int = 1, max_rank: int = 4) -> tuple[int, ...]:
    rank = draw(st.integers(min_rank, max_rank))
    return (draw(batch), *(draw(st.integers(1, 4)) for _ in range(rank - 1)))


@st.composite
def activation(draw, op: str):
    shape = _any_shape(draw)
    # ReLU sees exact zeros (its kink: gradient 0 by the contract); sigmoid/tanh wide values
    kinds = ["normal", "ties"] if op == "relu" else ["normal", "wide"]
    rng = np.random.default_rng(draw(seeds))
    return Example(op, {"x": _values(rng, shape, draw(st.sampled_from(kinds)))}, {},
                   draw(seeds), draw(layouts))


@st.composite
def flatten(draw):
    rng = np.random.default_rng(draw(seeds))
    return Example("flatten", {"x": _values(rng, _any_shape(draw), "normal")}, {}, draw(seeds),
                   draw(layouts))


@st.composite
def softmax(draw):
    shape = (draw(batch), draw(st.integers(1, 6)))
    rng = np.random.default_rng(draw(seeds))
    kind = draw(st.sampled_from(["normal", "wide", "ties"]))
    return Example("softmax", {"x": _values(rng, shape, kind)}, {}, draw(seeds),
                   draw(layouts))


def _probabilities(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    # rows summing to 1 exactly in float64 (TensorFlow's fused gradient assumes it; the
    # convention for rows that do not is pinned in test_conventions.py)
    values = rng.uniform(0.0, 1.0, (n, k))
    values = _exact32(values / values.sum(axis=1, keepdims=True))
    values[:, -1] = 1.0 - values[:, :-1].sum(axis=1)
    return values


@st.composite
def softmax_cross_entropy(draw):
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 6))  # an empty batch is an error
    rng = np.random.default_rng(draw(seeds))
    logits = _values(rng, (n, k), draw(st.sampled_from(["normal", "wide", "ties"])))
    if draw(st.booleans()):
        labels = rng.integers(0, k, n).astype(draw(st.sampled_from([np.int64, np.int32])))
    else:
        labels = _probabilities(rng, n, k)
    return Example("softmax_cross_entropy", {"logits": logits, "labels": labels}, {},
                   draw(seeds), draw(layouts))


@st.composite
def mse(draw):
    shape = _any_shape(draw)
    shape = (max(shape[0], 1), *shape[1:])  # an empty mean is an error
    rng = np.random.default_rng(draw(seeds))
    return Example("mse", {"pred": _values(rng, shape, "normal"),
                           "target": _values(rng, shape, "normal")}, {}, draw(seeds),
                   draw(layouts))


@st.composite
def batchnorm(draw):
    training = draw(st.booleans())
    c = draw(st.integers(1, 3))
    if draw(st.booleans()):
        shape = (draw(st.integers(2 if training else 0, 5)), c)
    else:
        h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        low = 0 if not training else (1 if h * w >= 2 else 2)  # >= 2 values per channel
        shape = (draw(st.integers(low, 3)), c, h, w)
    rng = np.random.default_rng(draw(seeds))
    arrays = {"x": _values(rng, shape, "normal"), "gamma": _values(rng, (c,), "normal"),
              "beta": _values(rng, (c,), "normal"),
              "running_mean": _values(rng, (c,), "normal"),
              "running_var": _values(rng, (c,), "positive")}
    params = {"training": training,
              "momentum": draw(st.sampled_from([0.1, 0.0, 1.0, 0.25, 0.875])),
              "eps": draw(st.sampled_from([1e-5, 1e-3, 0.125]))}
    return Example("batchnorm", arrays, params, draw(seeds), draw(layouts))


@st.composite
def dropout(draw):
    shape = _any_shape(draw)
    p = draw(st.sampled_from([0.0, 0.25, 0.5, 0.875]))
    rng = np.random.default_rng(draw(seeds))
    arrays = {"x": _values(rng, shape, "normal"),
              "mask": (rng.random(shape) >= p).astype(np.float64)}
    return Example("dropout", arrays, {"p": p, "training": draw(st.booleans())}, draw(seeds),
                   draw(layouts))


@st.composite
def local_response_norm(draw):
    n, c = draw(batch), draw(st.integers(1, 6))
    h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(seeds))
    params = {"size": draw(st.integers(1, c + 2)),
              "alpha": draw(st.sampled_from([1e-4, 0.5, 1.0, 2.0])),
              "beta": draw(st.sampled_from([0.75, 0.5, 1.0])),
              "k": draw(st.sampled_from([1.0, 2.0, 0.5]))}
    return Example("local_response_norm", {"x": _values(rng, (n, c, h, w), "normal")}, params,
                   draw(seeds), draw(layouts))


@st.composite
def l2_regularization(draw):
    count = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(seeds))
    shapes = [tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 4))))
              for _ in range(count)]
    arrays = {f"w{i}": _values(rng, shape, "normal") for i, shape in enumerate(shapes)}
    params = {"weight_decay": draw(st.sampled_from([0.01, 0.0, 1.0, 0.125]))}
    return Example("l2_regularization", arrays, params, draw(seeds), draw(layouts))


STRATEGIES = {
    "conv2d": conv2d(),
    "max_pool2d": max_pool2d(),
    "avg_pool2d": avg_pool2d(),
    "linear": linear(),
    "relu": activation("relu"),
    "sigmoid": activation("sigmoid"),
    "tanh": activation("tanh"),
    "flatten": flatten(),
    "softmax": softmax(),
    "softmax_cross_entropy": softmax_cross_entropy(),
    "mse": mse(),
    "batchnorm": batchnorm(),
    "dropout": dropout(),
    "local_response_norm": local_response_norm(),
    "l2_regularization": l2_regularization(),
}
