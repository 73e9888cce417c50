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
from parity_tests.tolerances import assert_outputs_match, gradient_floor  # noqa: E402
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


def floors(example: Example, result: dict) -> dict:
    """The gradients' scale floors (tolerances.gradient_floor): |dy|, or 1/N for a loss."""
    y = result.get("y")
    dy = None if y is None else upstream(example, y.shape, "float64")
    n = next(iter(example.arrays.values())).shape[0] if example.arrays else 1
    floor = gradient_floor(example.op, dy, n, gain(example))
    out = {key: floor for key in result if key.startswith("d")}
    if example.op == "softmax_cross_entropy":
        # the loss is log-sum-exp minus the true logit, each of order 1 or more: rounding leaves
        # an ulp of 1 even when the difference is 1e-9 (a confidently right example)
        out["loss"] = 1.0
    return out


def gain(example: Example) -> float:
    """The largest factor from dy to dx of batch norm, max|gamma| / sqrt(min var + eps); 1 for
    the other ops (their factors are at most 1 or grow the gradient itself as well)."""
    if example.op != "batchnorm" or example.arrays["x"].size == 0:
        return 1.0
    x, a = example.arrays["x"], example.arrays
    if example.params["training"]:
        var = x.var(axis=(0,) if x.ndim == 2 else (0, 2, 3))
    else:
        var = a["running_var"]
    return float(np.max(np.abs(a["gamma"])) / np.sqrt(np.min(var) + example.params["eps"]))


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
