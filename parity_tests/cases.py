"""The one table of op cases that drives the parity tests, and the code that runs a case.

A case names an op, the arrays it takes (by shape and kind of values) and its hyperparameters.
``run(module, case, dtype)`` runs forward and backward on any module that follows the contract
of docs/api.md -- a backend or reference/ops.py -- and returns every output by name, so that one
helper compares everything: values, gradients, running statistics, dtype.

Inputs are drawn in float64 from a generator seeded by the case id, then rounded to float32
values, so the float32 and float64 runs and the reference all see exactly the same numbers.
"""

from __future__ import annotations

import itertools
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Array:
    """How to draw one input array.

    kind: "normal" (standard normal), "distinct" (tie-free values, for max pooling),
    "away_from_zero" (|x| >= 0.1, away from ReLU's kink), "positive" (in [0.5, 1.5], for
    variances), "labels" (int64 classes in [0, classes)), "probabilities" (rows sum to 1),
    "mask" (0/1 keep mask with P(keep) = 1 - p), "none" (the argument is None: ``NO_BIAS``).
    """

    shape: tuple[int, ...]
    kind: str = "normal"
    classes: int = 0  # for "labels"
    p: float = 0.5  # for "mask"


@dataclass(frozen=True)
class Case:
    op: str  # "conv2d", "max_pool2d", ... (the function name without _forward/_backward)
    arrays: dict[str, Array]  # positional array arguments, in order
    params: dict[str, Any] = field(default_factory=dict)  # keyword hyperparameters
    label: str = ""  # readable test id

    @property
    def id(self) -> str:
        return f"{self.op}-{self.label}" if self.label else self.op


# conv2d's b = None: a conv without bias, whose backward returns db = None
NO_BIAS = Array((), "none")


# How each op is called: "pair" ops have <op>_forward -> (y, cache) and <op>_backward; the
# names of what the backward returns, in order.
PAIR_GRADS: dict[str, tuple[str, ...]] = {
    "conv2d": ("dx", "dw", "db"),
    "linear": ("dx", "dw", "db"),
    "max_pool2d": ("dx",),
    "avg_pool2d": ("dx",),
    "relu": ("dx",),
    "sigmoid": ("dx",),
    "tanh": ("dx",),
    "flatten": ("dx",),
    "softmax": ("dx",),
    "dropout": ("dx",),
    "local_response_norm": ("dx",),
    "batchnorm": ("dx", "dgamma", "dbeta"),
}


def _label(value: Any) -> str:
    """A compact test-id form of an int, pair or pair of pairs: 1, 1x2, 0x1x2x0."""
    return "x".join(ch for ch in repr(value) if ch.isdigit())


def _padding_label(padding: Any) -> str:
    return padding if isinstance(padding, str) else "pad" + _label(padding)


def _conv_cases() -> list[Case]:
    """kernel 1-5 x stride 1-3 x every padding form, sizes odd/even/H != W, batch 1 and 2."""
    paddings = [0, 1, (1, 2), ((0, 1), (2, 0)), "same", "valid"]
    sizes = [(7, 6), (8, 8), (5, 9)]
    cases = []
    for i, (k, s, padding) in enumerate(itertools.product(range(1, 6), range(1, 4), paddings)):
        h, w = sizes[i % len(sizes)]
        if k > min(h, w):
            h, w = h + k, w + k
        n = 1 + i % 2
        kw = k + (i % 2 if k < 5 else 0)  # some kernels are not square
        stride = s if i % 4 else (s, 1 + (s % 3))  # some strides differ per axis
        cases.append(Case(
            "conv2d",
            {"x": Array((n, 2, h, w)), "w": Array((3, 2, k, kw)), "b": Array((3,))},
            {"stride": stride, "padding": padding},
            f"k{k}x{kw}-s{_label(stride)}-{_padding_label(padding)}-{n}x2x{h}x{w}",
        ))
    # without bias (b = None, db = None): a spread of the grid, every kernel size and padding
    # form among them, and signs_cnn's first conv (004: 4x4, 8 filters, stride 1, "same")
    cases += [Case("conv2d", {**case.arrays, "b": NO_BIAS}, case.params, f"{case.label}-no_bias")
              for case in cases[3::11]]
    cases.append(Case("conv2d", {"x": Array((2, 3, 8, 8)), "w": Array((8, 3, 4, 4)), "b": NO_BIAS},
                      {"stride": 1, "padding": "same"}, "signs_conv1-k4-same-no_bias"))
    return cases


def _pool_cases() -> list[Case]:
    """Max and average pooling: kernel 1-5, stride 1-3 (and None), padding forms."""
    cases = []
    sizes = [(7, 6), (8, 8), (5, 9)]
    for i, (k, s) in enumerate(itertools.product(range(1, 6), (None, 1, 2, 3))):
        h, w = sizes[i % len(sizes)]
        pads = [0, "same", "valid"]
        if k >= 2:
            pads += [k // 2, ((0, k // 2), (k // 2, 0))]
        for padding in pads:
            n = 1 + i % 2
            label = f"k{k}-s{s}-{_padding_label(padding)}-{n}x3x{h}x{w}"
            cases.append(Case("max_pool2d", {"x": Array((n, 3, h, w), "distinct")},
                              {"kernel_size": k, "stride": s, "padding": padding}, label))
            for include in (True, False):
                cases.append(Case("avg_pool2d", {"x": Array((n, 3, h, w))},
                                  {"kernel_size": k, "stride": s, "padding": padding,
                                   "count_include_pad": include},
                                  f"{label}-{'include' if include else 'exclude'}_pad"))
    # rectangular kernels and strides
    cases.append(Case("max_pool2d", {"x": Array((2, 2, 9, 7), "distinct")},
                      {"kernel_size": (3, 2), "stride": (2, 1), "padding": "same"},
                      "k3x2-s2x1-same"))
    cases.append(Case("avg_pool2d", {"x": Array((2, 2, 9, 7))},
                      {"kernel_size": (3, 2), "stride": (2, 1), "padding": "same",
                       "count_include_pad": False}, "k3x2-s2x1-same-exclude_pad"))
    return cases


def _other_cases() -> list[Case]:
    cases = [
        Case("linear", {"x": Array((4, 6)), "w": Array((5, 6)), "b": Array((5,))}, {}, "2d"),
        Case("linear", {"x": Array((1, 6)), "w": Array((3, 6)), "b": Array((3,))}, {}, "batch1"),
        Case("linear", {"x": Array((3, 2, 3, 4)), "w": Array((5, 24)), "b": Array((5,))}, {},
             "4d-input-NCHW-flatten"),
        Case("flatten", {"x": Array((3, 2, 3, 4))}, {}, "4d"),
        Case("flatten", {"x": Array((1, 5))}, {}, "2d-batch1"),
        Case("softmax", {"x": Array((4, 7))}, {}, "4x7"),
        Case("softmax", {"x": Array((1, 3))}, {}, "batch1"),
    ]
    for act in ("relu", "sigmoid", "tanh"):
        cases.append(Case(act, {"x": Array((2, 3, 4, 5), "away_from_zero")}, {}, "4d"))
        cases.append(Case(act, {"x": Array((1, 7), "away_from_zero")}, {}, "2d-batch1"))
    for n, k in ((5, 4), (1, 10)):
        cases.append(Case("softmax_cross_entropy",
                          {"logits": Array((n, k)), "labels": Array((n,), "labels", classes=k)},
                          {}, f"int_labels-{n}x{k}"))
        cases.append(Case("softmax_cross_entropy",
                          {"logits": Array((n, k)), "labels": Array((n, k), "probabilities")},
                          {}, f"probabilities-{n}x{k}"))
    cases += [
        Case("mse", {"pred": Array((4, 3)), "target": Array((4, 3))}, {}, "4x3"),
        Case("mse", {"pred": Array((2, 3, 4, 4)), "target": Array((2, 3, 4, 4))}, {}, "4d"),
        Case("l2_regularization",
             {"w1": Array((3, 2, 3, 3)), "w2": Array((4, 5)), "w3": Array((7,))},
             {"weight_decay": 0.01}, "three_arrays"),
    ]
    for shape in ((6, 4), (3, 4, 5, 2), (1, 2, 3, 3)):
        tag = "x".join(map(str, shape))
        bn = {"x": Array(shape), "gamma": Array((shape[1],)), "beta": Array((shape[1],)),
              "running_mean": Array((shape[1],)),
              "running_var": Array((shape[1],), "positive")}
        cases.append(Case("batchnorm", bn, {"training": True}, f"train-{tag}"))
        cases.append(Case("batchnorm", bn, {"training": True, "momentum": 0.3, "eps": 1e-3},
                          f"train-momentum0.3-eps1e-3-{tag}"))
        cases.append(Case("batchnorm", bn, {"training": False}, f"eval-{tag}"))
    for p in (0.0, 0.25, 0.5, 0.9):
        cases.append(Case("dropout", {"x": Array((3, 4, 5)), "mask": Array((3, 4, 5), "mask", p=p)},
                          {"p": p, "training": True}, f"train-p{p}"))
    cases.append(Case("dropout", {"x": Array((3, 4)), "mask": Array((3, 4), "mask")},
                      {"p": 0.5, "training": False}, "eval"))
    for size, params in ((1, {}), (2, {}), (3, {"alpha": 0.5, "beta": 0.75, "k": 2.0}),
                         (4, {"alpha": 1.0, "beta": 0.5, "k": 1.0}),
                         (5, {"alpha": 1e-4, "beta": 0.75, "k": 1.0}),
                         (9, {"alpha": 1e-3, "beta": 0.75, "k": 1.0})):
        c = 7 if size < 9 else 12
        cases.append(Case("local_response_norm", {"x": Array((2, c, 3, 4))},
                          {"size": size, **params}, f"size{size}-C{c}"))
    return cases


# named cases: examples the property tests and the audit found


def _found_cases() -> list[Case]:
    """Examples the property tests (test_properties.py) or the audit found failing, kept as
    cases so that every backend runs them from then on. Labels start with "found-"."""
    empty = (0, 2, 5, 4)  # an empty batch (issue 9, point 3): every op must accept N = 0
    return [
        Case("conv2d", {"x": Array(empty), "w": Array((3, 2, 3, 2)), "b": Array((3,))},
             {"stride": (2, 1), "padding": 1}, "found-empty_batch"),
        Case("max_pool2d", {"x": Array(empty, "distinct")},
             {"kernel_size": 2, "stride": None, "padding": 0}, "found-empty_batch"),
        Case("avg_pool2d", {"x": Array(empty)},
             {"kernel_size": 3, "stride": 1, "padding": "same", "count_include_pad": False},
             "found-empty_batch"),
        Case("linear", {"x": Array(empty), "w": Array((3, 40)), "b": Array((3,))}, {},
             "found-empty_batch"),
        Case("flatten", {"x": Array(empty)}, {}, "found-empty_batch"),
        Case("relu", {"x": Array(empty)}, {}, "found-empty_batch"),
        Case("sigmoid", {"x": Array((0, 3))}, {}, "found-empty_batch"),
        Case("softmax", {"x": Array((0, 4))}, {}, "found-empty_batch"),
        Case("dropout", {"x": Array(empty), "mask": Array(empty, "mask")},
             {"p": 0.5, "training": True}, "found-empty_batch"),
        Case("local_response_norm", {"x": Array(empty)}, {"size": 3}, "found-empty_batch"),
        Case("batchnorm", {"x": Array(empty), "gamma": Array((2,)), "beta": Array((2,)),
                           "running_mean": Array((2,)),
                           "running_var": Array((2,), "positive")},
             {"training": False}, "found-empty_batch-eval"),
        # TensorFlow's CPU AvgPoolGrad, float64, SAME, count_include_pad=False, a kernel
        # taller than the input (tensorflow#48773): found by the property tests' deep profile
        Case("avg_pool2d", {"x": Array((1, 1, 1, 4))},
             {"kernel_size": 5, "stride": 1, "padding": "same", "count_include_pad": False},
             "found-tf_avgpoolgrad-same-exclude-kernel5-1x4"),
        # the upstream defects' geometries (reference/upstream_defects.json), one case each,
        # so that the table runs them on every backend
        # tf-onednn-conv2d-stride-w-cin1-ow1: one input channel, a strided axis of one output
        Case("conv2d", {"x": Array((2, 1, 2, 2)), "w": Array((1, 1, 1, 2)), "b": Array((1,))},
             {"stride": (1, 3), "padding": 0}, "found-onednn-stride1x3-cin1-ow1"),
        Case("conv2d", {"x": Array((3, 1, 5, 4)), "w": Array((2, 1, 2, 3)), "b": Array((2,))},
             {"stride": (1, 2), "padding": 0}, "found-onednn-stride1x2-cin1-ow1-oh4"),
        Case("conv2d", {"x": Array((3, 1, 2, 5)), "w": Array((2, 1, 3, 2)), "b": Array((2,))},
             {"stride": (2, 1), "padding": "same"}, "found-onednn-stride2x1-cin1-oh1-same"),
        # tf-onednn-conv2d-empty-batch: N = 0 with C_in != C_out and "same"
        Case("conv2d", {"x": Array((0, 2, 7, 6)), "w": Array((3, 2, 3, 3)), "b": Array((3,))},
             {"stride": 2, "padding": "same"}, "found-onednn-empty_batch-same"),
        # tf-onednn-conv2d-backprop-filter-1x1-strided: fewer channels than oneDNN's block
        Case("conv2d", {"x": Array((2, 4, 8, 8)), "w": Array((8, 4, 1, 1)), "b": Array((8,))},
             {"stride": 2, "padding": 0}, "found-onednn-1x1-stride2-cin4"),
        # tf-avgpoolgrad-same-kernel-larger-than-input: issue 9's repro, and a strided one
        Case("avg_pool2d", {"x": Array((1, 1, 4, 1))},
             {"kernel_size": (5, 1), "stride": 1, "padding": "same", "count_include_pad": False},
             "found-tf_avgpoolgrad-same-exclude-kernel5x1-4x1"),
        Case("avg_pool2d", {"x": Array((2, 2, 5, 8))},
             {"kernel_size": (6, 1), "stride": (3, 1), "padding": "same",
              "count_include_pad": False}, "found-tf_avgpoolgrad-same-exclude-k6x1-s3x1-5x8"),
    ]


CASES: list[Case] = _conv_cases() + _pool_cases() + _other_cases() + _found_cases()


# ---------------------------------------------------------------------------------------------
# drawing inputs and running a case


def _rng(case: Case, salt: str = "") -> np.random.Generator:
    return np.random.default_rng(zlib.crc32((case.id + salt).encode()))


def _draw(spec: Array, rng: np.random.Generator) -> np.ndarray:
    size = int(np.prod(spec.shape))
    if spec.kind == "none":
        return None
    if spec.kind == "normal":
        values = rng.standard_normal(spec.shape)
    elif spec.kind == "distinct":
        # a permutation of evenly spaced values: no ties, spacing far above float32 rounding
        values = (rng.permutation(size).reshape(spec.shape) + 0.5) / size * 4 - 2
    elif spec.kind == "away_from_zero":
        values = rng.choice([-1.0, 1.0], spec.shape) * rng.uniform(0.1, 2.0, spec.shape)
    elif spec.kind == "positive":
        values = rng.uniform(0.5, 1.5, spec.shape)
    elif spec.kind == "labels":
        return rng.integers(0, spec.classes, spec.shape).astype(np.int64)
    elif spec.kind == "probabilities":
        # rows that sum to 1 exactly in float64: TensorFlow's fused op takes that for granted
        # in its gradient (softmax - t), PyTorch and NumPy do not (softmax * sum(t) - t)
        values = rng.uniform(0.0, 1.0, spec.shape)
        values = (values / values.sum(axis=1, keepdims=True)).astype(np.float32)
        values = values.astype(np.float64)
        values[:, -1] = 1.0 - values[:, :-1].sum(axis=1)
        return values
    elif spec.kind == "mask":
        return (rng.random(spec.shape) >= spec.p).astype(np.float64)
    else:
        raise ValueError(f"spec.kind: got {spec.kind!r}, expected a known kind")
    # round to float32 values so that every dtype sees the same numbers
    return values.astype(np.float32).astype(np.float64)


def inputs(case: Case, dtype: str | np.dtype) -> dict[str, np.ndarray]:
    """The case's input arrays in ``dtype`` (integer labels and masks stay as drawn)."""
    rng = _rng(case)
    out = {}
    for name, spec in case.arrays.items():
        value = _draw(spec, rng)
        out[name] = value if spec.kind in ("labels", "mask", "none") else value.astype(dtype)
    if case.op == "dropout":
        out["mask"] = out["mask"].astype(dtype)
    return out


def upstream(case: Case, shape: tuple[int, ...], dtype: str | np.dtype) -> np.ndarray:
    """The upstream gradient dy fed to the case's backward."""
    rng = _rng(case, "dy")
    return rng.standard_normal(shape).astype(np.float32).astype(dtype)


def run(module: Any, case: Case, dtype: str | np.dtype) -> dict[str, np.ndarray]:
    """Run ``case`` forward and backward on ``module``; every output by name."""
    return call(module, case.op, inputs(case, dtype), case.params,
                lambda shape: upstream(case, shape, dtype))


def call(module: Any, op: str, args: dict[str, np.ndarray], params: dict[str, Any],
         dy: Any) -> dict[str, np.ndarray]:
    """Run ``op`` forward and backward on ``module`` with the arrays ``args`` (in order) and the
    hyperparameters ``params``; ``dy(shape)`` gives the upstream gradient. Every output by
    name (also used by the property tests, parity_tests/test_properties.py)."""
    if op in ("softmax_cross_entropy", "mse"):
        loss, grad = getattr(module, op)(*args.values(), **params)
        return {"loss": np.asarray(loss), f"d{list(args)[0]}": grad}
    if op == "l2_regularization":
        loss, grads = module.l2_regularization(list(args.values()), **params)
        return {"loss": np.asarray(loss), **{f"d{k}": g for k, g in zip(args, grads)}}
    out: dict[str, np.ndarray] = {}
    forward = getattr(module, f"{op}_forward")
    if op == "batchnorm":
        y, cache, out["running_mean"], out["running_var"] = forward(*args.values(), **params)
    elif op == "dropout":
        y, cache = forward(args["x"], mask=args["mask"], **params)
    else:
        y, cache = forward(*args.values(), **params)
    out["y"] = y
    grads = getattr(module, f"{op}_backward")(dy(y.shape), cache)
    if not isinstance(grads, tuple):
        grads = (grads,)
    names = PAIR_GRADS[op]
    assert len(grads) == len(names), f"{op}_backward: got {len(grads)} gradients, expected {names}"
    # A gradient the op does not have (db of a conv without bias) is None and left out: a
    # backend that gives one where the reference gives None (or the reverse) then fails the
    # comparison of the output names.
    out.update((name, g) for name, g in zip(names, grads) if g is not None)
    return out
