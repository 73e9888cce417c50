"""Property-based parity: every op on examples Hypothesis draws from its whole argument space.

For each op (parity_tests/strategies.py) and backend, drawn examples (geometry, values, dtype,
memory layout) run forward and backward and every output is compared with the reference; a
second test compares the installed backends with each other on the same examples. The CI
profile (the default, registered in conftest.py) is derandomised; the deep profile searches
20x further:

    python -m pytest --hypothesis-profile=deep -m fuzz

A failing example becomes a named case of the case table (cases.py), so that it is run on every
backend by the table tests from then on.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the property tests need hypothesis "
                                 "(pip install 'cnn-rosetta[dev]')")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import impls  # noqa: E402
from parity_tests.cases import call  # noqa: E402
from parity_tests.conftest import load_or_skip  # noqa: E402
from parity_tests.strategies import STRATEGIES, Example, laid_out, upstream  # noqa: E402
from parity_tests.tolerances import assert_outputs_match  # noqa: E402
from reference import ops as reference_ops  # noqa: E402

pytestmark = pytest.mark.fuzz

DTYPES = ("float64", "float32")
OPS = sorted(STRATEGIES)

# The windowed ops have the largest argument space, and every defect found so far: they get
# WINDOWED times the profile's examples.
WINDOWED = 4


def examples(op: str) -> int:
    """The number of examples for ``op`` under the active profile (conftest.py)."""
    weight = WINDOWED if op in ("conv2d", "max_pool2d", "avg_pool2d") else 1
    return settings().max_examples * weight

# The reference runs once per example: the derandomised profile draws the same examples for
# every backend's test of an op, so its result is memoised by the example's digest.
_REFERENCE: dict[str, dict] = {}


def outputs(module, example: Example, dtype: str) -> dict:
    return call(module, example.op, laid_out(example, dtype), example.params,
                lambda shape: upstream(example, shape, dtype))


def _top(a: np.ndarray | None) -> float:
    return float(np.max(np.abs(a))) if a is not None and a.size else 0.0


def _batch_axes(x: np.ndarray) -> tuple[int, ...]:
    return (0,) if x.ndim == 2 else (0, 2, 3)


def floors(example: Example, result: dict) -> dict:
    """Each output's scale floor (tolerances.normalized_error): the size of what the output is
    computed from, for outputs that can cancel to far less than that.

    Rounding leaves a few ulps of the terms a result is made of, even when the result itself
    nearly vanishes: a window of values that cancel (an average pool, a conv), a saturated
    sigmoid or tanh (y (1 - y) with y rounded to 1), a dominant softmax entry, batch norm of a
    nearly constant batch (divided by sqrt(eps)), the loss of a confidently right example.
    Measured against the result alone that reads as a large error; against its terms it is
    ~1e-7 in float32, while a convention bug still shows as an error of order 1. The drawn
    values reach those regimes on purpose, the case table's do not.
    """
    a, op, p = example.arrays, example.op, example.params
    y = result.get("y")
    dy = _top(None if y is None else upstream(example, y.shape, "float64"))
    n = next(iter(a.values())).shape[0] if a else 1
    out = {key: dy for key in result if key.startswith("d")}  # dx = J^T dy with |J| <= 1
    if op in ("conv2d", "linear"):
        out.update(y=_top(a["x"]) * _top(a["w"]) + _top(a["b"]), dx=dy * _top(a["w"]),
                   dw=dy * _top(a["x"]))
    elif op == "avg_pool2d":
        out["y"] = _top(a["x"])
    elif op in ("sigmoid", "tanh", "softmax"):
        # values in [-1, 1]: their unit is 1. sigmoid(-92) = 1.1e-40 is a float32 denormal that
        # torch and TensorFlow return as 0 (exp(92) overflows in their 1 / (1 + exp(-x))),
        # NumPy as the denormal: an absolute error of 1e-40, not 100 %
        out["y"] = 1.0
    elif op == "batchnorm" and a["x"].size:
        x, axes = a["x"], _batch_axes(a["x"])
        mean = x.mean(axis=axes) if p["training"] else a["running_mean"]
        var = x.var(axis=axes) if p["training"] else a["running_var"]
        inv_std = 1 / np.sqrt(np.min(var) + p["eps"])
        # the terms of x - mean over the standard deviation: for a (nearly) constant batch
        # the difference cancels and an ulp of x is divided by sqrt(eps)
        xscale = (_top(x) + _top(mean)) * inv_std
        out.update(y=_top(a["gamma"]) * xscale + _top(a["beta"]),
                   dx=dy * max(_top(a["gamma"]) * inv_std, 1.0), dgamma=dy * max(xscale, 1.0))
    elif op == "softmax_cross_entropy":
        # log-sum-exp minus the true logit, both as large as the logits
        out.update(loss=max(1.0, _top(a["logits"])), dlogits=1.0 / max(n, 1))
    elif op == "mse":
        out["dpred"] = 1.0 / max(n, 1)
    return out


def reference_outputs(example: Example) -> dict:
    key = example.key()
    if key not in _REFERENCE:
        if len(_REFERENCE) > 5000:
            _REFERENCE.clear()
        _REFERENCE[key] = outputs(reference_ops, example, "float64")
    return _REFERENCE[key]


@pytest.mark.parametrize("name", impls.BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_drawn_examples_match_reference(op: str, name: str) -> None:
    module = load_or_skip(name)

    @settings(max_examples=examples(op))
    @given(example=STRATEGIES[op], dtype=st.sampled_from(DTYPES))
    def check(example: Example, dtype: str) -> None:
        expected = reference_outputs(example)
        assert_outputs_match(outputs(module, example, dtype), expected, op, dtype,
                             floors=floors(example, expected))

    check()


@pytest.mark.parametrize("op", OPS)
def test_backends_agree_on_drawn_examples(op: str) -> None:
    names = impls.available()
    if len(names) < 2:
        pytest.skip(f"only {names} installed: comparing backends needs two")
    modules = {name: impls.load(name) for name in names}

    @settings(max_examples=examples(op))
    @given(example=STRATEGIES[op], dtype=st.sampled_from(DTYPES))
    def check(example: Example, dtype: str) -> None:
        results = {name: outputs(module, example, dtype) for name, module in modules.items()}
        for first, second in itertools.combinations(names, 2):
            try:
                assert_outputs_match(results[second], results[first], op, dtype,
                                     floors=floors(example, results[first]))
            except AssertionError as error:
                raise AssertionError(f"{second} vs {first}: {error}") from None

    check()


def test_conv_strategy_draws_convs_with_and_without_bias() -> None:
    """b = None (a conv without bias, db None) is part of the conv strategy's space (a quarter
    of the draws), and the reference then gives no db."""
    seen = {True: [], False: []}

    @settings(max_examples=40, derandomize=True, database=None)
    @given(example=STRATEGIES["conv2d"])
    def draw(example: Example) -> None:
        seen[example.arrays["b"] is None].append(example)

    draw()
    assert seen[True] and seen[False], {k: len(v) for k, v in seen.items()}
    assert "db" not in outputs(reference_ops, seen[True][0], "float64")
    assert "db" in outputs(reference_ops, seen[False][0], "float64")
