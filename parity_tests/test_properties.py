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

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the property tests need hypothesis "
                                 "(pip install 'cnn-rosetta[dev]')")
from hypothesis import given  # noqa: E402
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
    floor = gradient_floor(example.op, dy, n)
    return {key: floor for key in result if key.startswith("d")}


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
