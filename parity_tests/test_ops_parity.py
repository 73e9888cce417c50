"""Every op x backend x dtype x configuration against the reference, and backends pairwise.

One table (parity_tests/cases.py) drives both tests; one helper (`assert_outputs_match`)
checks names, shapes, dtypes and values of every output, forward and backward.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

import impls
from impls import _checks
from parity_tests import tolerances
from parity_tests.cases import CASES, Case, inputs, run, upstream
from parity_tests.conftest import load_or_skip
from reference import ops as reference_ops
from reference import vectors

DTYPES = ("float64", "float32")


CASES_BY_ID = {case.id: case for case in CASES}


# Results are memoised by case id: the reference runs once per case, each backend once per
# case and dtype, and the pairwise comparisons reuse them.
@functools.cache
def _reference_result(case_id: str) -> dict[str, np.ndarray]:
    return run(reference_ops, CASES_BY_ID[case_id], "float64")


@functools.cache
def _backend_result(name: str, case_id: str, dtype: str) -> dict[str, np.ndarray]:
    return run(impls.load(name), CASES_BY_ID[case_id], dtype)


def reference_result(case: Case) -> dict[str, np.ndarray]:
    return _reference_result(case.id)


def backend_result(name: str, case: Case, dtype: str) -> dict[str, np.ndarray]:
    return _backend_result(name, case.id, dtype)


def assert_outputs_match(got: dict, expected: dict, case: Case, dtype: str,
                         check_dtype: bool = True) -> None:
    tolerances.assert_outputs_match(got, expected, case.op, dtype, check_dtype)


def _case_id(case: Case) -> str:
    return case.id


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", impls.BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_backend_matches_reference(case: Case, name: str, dtype: str) -> None:
    load_or_skip(name)
    assert_outputs_match(backend_result(name, case, dtype), reference_result(case), case, dtype)


PAIRS = list(itertools.combinations(impls.BACKENDS, 2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}-vs-{p[1]}")
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_backends_agree(case: Case, pair: tuple[str, str], dtype: str) -> None:
    first, second = pair
    load_or_skip(first)
    load_or_skip(second)
    assert_outputs_match(backend_result(second, case, dtype), backend_result(first, case, dtype),
                         case, dtype)


def test_case_ids_are_unique() -> None:
    assert len(CASES_BY_ID) == len(CASES)


def test_case_table_covers_every_op() -> None:
    """The table exercises every op of the contract, with the grid the suite promises."""
    ops = {case.op for case in CASES}
    assert ops == {"conv2d", "max_pool2d", "avg_pool2d", "linear", "relu", "sigmoid", "tanh",
                   "flatten", "softmax", "softmax_cross_entropy", "mse", "batchnorm", "dropout",
                   "local_response_norm", "l2_regularization"}
    conv = [c for c in CASES if c.op == "conv2d"]
    assert {c.arrays["w"].shape[2] for c in conv} == {1, 2, 3, 4, 5}
    strides = {c.params["stride"] if isinstance(c.params["stride"], int)
               else c.params["stride"][0] for c in conv}
    assert strides == {1, 2, 3}
    assert {repr(c.params["padding"]) for c in conv} >= {
        "0", "1", "(1, 2)", "((0, 1), (2, 0))", "'same'", "'valid'"}
    assert any(c.arrays["x"].shape[0] == 1 for c in conv)
    assert any(c.arrays["x"].shape[2] != c.arrays["x"].shape[3] for c in conv)


# --- the published and hand-worked known answers, on every backend --------------------------

# im2col is the NumPy tutorial's internal step, not an op of the contract.
BACKEND_VECTORS = [n for n in vectors.names() if vectors.load(n)["op"] != "im2col"]


@pytest.mark.parametrize("name", impls.BACKENDS)
@pytest.mark.parametrize("vector", BACKEND_VECTORS)
def test_backend_reproduces_known_answer(vector: str, name: str) -> None:
    assert vectors.failures(vectors.load(vector), load_or_skip(name)) == []


# ---------------------------------------------------------------------------------------------
# input_grad=False (a network's first layer) and the NumPy backend's batch slicing


def _first_cases(op: str, count: int = 6) -> list[Case]:
    """A few cases of ``op``, spread over the table (different geometries)."""
    cases = [case for case in CASES if case.op == op]
    return cases[:: max(1, len(cases) // count)][:count]


@pytest.mark.parametrize("name", ["reference", *impls.BACKENDS])
@pytest.mark.parametrize("case", _first_cases("conv2d") + _first_cases("linear"), ids=_case_id)
def test_input_grad_false_skips_dx_only(case: Case, name: str) -> None:
    module = reference_ops if name == "reference" else load_or_skip(name)
    dtype = "float64"
    args = inputs(case, dtype)
    y, cache = getattr(module, f"{case.op}_forward")(*args.values(), **case.params)
    backward = getattr(module, f"{case.op}_backward")
    dy = upstream(case, y.shape, dtype)
    dx, dw, db = backward(dy, cache)
    none, dw_only, db_only = backward(dy, cache, input_grad=False)
    assert dx is not None and none is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)


# conv cases with a batch of at least 2, so that slicing the batch changes something
SLICEABLE_CONV_CASES = [case for case in CASES
                        if case.op == "conv2d" and inputs(case, "float64")["x"].shape[0] >= 2]


def test_many_conv_cases_can_be_sliced() -> None:
    # half the conv table has a batch of 2 (every geometry appears with both batch sizes)
    assert len(SLICEABLE_CONV_CASES) >= 40


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SLICEABLE_CONV_CASES, ids=_case_id)
def test_numpy_conv_in_batch_slices_matches_reference(case: Case, dtype: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # The parity cases are small enough for one slice; a budget of 1 byte makes the NumPy
    # backend run im2col, the GEMMs and col2im one sample at a time.
    numpy_backend = impls.load("numpy")
    monkeypatch.setattr(numpy_backend.ops, "IM2COL_BYTES", 1)
    assert_outputs_match(run(numpy_backend, case, dtype), reference_result(case), case, dtype)


def _disjoint_windows(case: Case) -> bool:
    x = inputs(case, "float64")["x"]
    geom = _checks.pool2d(x, case.params["kernel_size"], case.params.get("stride"),
                          case.params.get("padding", 0))
    return all(s >= k for s, k in zip(geom.stride, geom.kernel))


DISJOINT_MAX_POOL_CASES = [case for case in CASES
                           if case.op == "max_pool2d" and _disjoint_windows(case)]


def test_many_max_pool_cases_have_disjoint_windows() -> None:
    assert len(DISJOINT_MAX_POOL_CASES) >= 40


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DISJOINT_MAX_POOL_CASES, ids=_case_id)
def test_numpy_max_pool_by_window_argmax_matches_reference(
        case: Case, dtype: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only windows of ARGMAX_WINDOW_CELLS or more take this path in use (8x8); a threshold of
    # 1 sends every disjoint case of the table through it.
    numpy_backend = impls.load("numpy")
    monkeypatch.setattr(numpy_backend.ops, "ARGMAX_WINDOW_CELLS", 1)
    assert_outputs_match(run(numpy_backend, case, dtype), reference_result(case), case, dtype)
