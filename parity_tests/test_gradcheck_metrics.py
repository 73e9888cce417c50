"""The tutorials' gradient-check metrics in reference/gradcheck.py, against hand-computed values.

cs231n's rel_error (001), deeplearning.ai's norm ratio with its 2e-7 threshold (000's
grad_check) and "Deep Learning from Scratch"'s mean absolute difference; each value below is
worked out by hand in the comment next to it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reference import gradcheck, ops

METRICS = [gradcheck.cs231n_rel_error, gradcheck.norm_ratio, gradcheck.mean_abs_difference]


def test_cs231n_rel_error_is_the_largest_elementwise_ratio():
    # |1 - 1.5| / (1 + 1.5) = 0.2; |2 - 2| / 4 = 0
    assert gradcheck.cs231n_rel_error([1.0, 2.0], [1.5, 2.0]) == pytest.approx(0.2, rel=1e-15)
    # a sign flip: |1 - (-1)| / (1 + 1) = 1, the largest value it can take
    assert gradcheck.cs231n_rel_error([1.0, 3.0], [-1.0, 3.0]) == 1.0


def test_cs231n_rel_error_floor_keeps_tiny_gradients_finite():
    # both 0 -> 0 / max(1e-8, 0) = 0; 1e-9 against 0 -> 1e-9 / max(1e-8, 1e-9) = 0.1
    assert gradcheck.cs231n_rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gradcheck.cs231n_rel_error([0.0, 5.0], [1e-9, 5.0]) == pytest.approx(0.1, rel=1e-12)


def test_cs231n_rel_error_is_symmetric():
    x, y = np.array([[0.3, -2.0], [4.0, 1e-3]]), np.array([[0.31, -2.2], [4.0, 2e-3]])
    # elements: 0.01/0.61, 0.2/4.2, 0, 1e-3/3e-3 = 1/3 (the largest)
    assert gradcheck.cs231n_rel_error(x, y) == pytest.approx(1 / 3, rel=1e-12)
    assert gradcheck.cs231n_rel_error(y, x) == gradcheck.cs231n_rel_error(x, y)


def test_norm_ratio_by_hand():
    # ||(3, 4) - (6, 8)|| = 5; ||(3, 4)|| + ||(6, 8)|| = 5 + 10 -> 1/3
    assert gradcheck.norm_ratio([3.0, 4.0], [6.0, 8.0]) == pytest.approx(1 / 3, rel=1e-15)
    # one side zero: 5 / (5 + 0) = 1
    assert gradcheck.norm_ratio([3.0, 4.0], [0.0, 0.0]) == 1.0
    # both zero: 0, not the tutorial's 0 / 0
    assert gradcheck.norm_ratio(np.zeros((2, 2)), np.zeros((2, 2))) == 0.0


def test_norm_ratio_flattens_every_axis():
    # 000 compares one vector of all parameters; the shape must not matter
    g = np.array([[3.0], [4.0]])
    assert gradcheck.norm_ratio(g, 2 * g) == gradcheck.norm_ratio(g.ravel(), 2 * g.ravel())


def test_norm_ratio_threshold_is_deeplearning_ai_2e_7():
    assert gradcheck.NORM_RATIO_THRESHOLD == 2e-7
    # ||(3e-7, 0)|| / (1 + 1 + 3e-7) = 1.5e-7 (passes); 5e-7 -> 2.5e-7 (a "mistake")
    assert gradcheck.norm_ratio([1.0, 0.0], [1.0 + 3e-7, 0.0]) == pytest.approx(1.5e-7, rel=1e-6)
    assert gradcheck.norm_ratio_passes([1.0, 0.0], [1.0 + 3e-7, 0.0])
    assert not gradcheck.norm_ratio_passes([1.0, 0.0], [1.0 + 5e-7, 0.0])
    assert gradcheck.norm_ratio_passes([1.0, 0.0], [1.0 + 5e-7, 0.0], threshold=3e-7)


def test_mean_abs_difference_by_hand():
    # |(1, 2, 3, 4) - (1, 3, 1, 4)| = (0, 1, 2, 0), mean 0.75
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert gradcheck.mean_abs_difference(a, [[1.0, 3.0], [1.0, 4.0]]) == 0.75
    # absolute: ten times the gradients, ten times the score
    assert gradcheck.mean_abs_difference(10 * a, [[10.0, 30.0], [10.0, 40.0]]) == 7.5


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
def test_metric_of_equal_arrays_is_zero_and_ints_are_accepted(metric):
    assert metric(np.arange(6).reshape(2, 3), np.arange(6.0).reshape(2, 3)) == 0.0
    assert metric(2.5, 2.5) == 0.0  # a scalar is a one-element array


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
def test_metric_propagates_nan(metric):
    # a NaN gradient is a failed check, never a small number
    assert math.isnan(metric([1.0, np.nan], [1.0, 2.0]))


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
def test_metric_refuses_a_shape_mismatch_naming_the_argument(metric):
    with pytest.raises(ValueError, match=r"got shape \(3,\), expected \(2,\)"):
        metric(np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
def test_metric_refuses_empty_arrays(metric):
    with pytest.raises(ValueError, match="got an empty array of shape \\(0,\\), expected at least"):
        metric(np.zeros(0), np.zeros(0))


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("bad", [np.array([True, False]), np.array(["a", "b"]),
                                 np.array([1j, 2j]), [None, 1.0]],
                         ids=["bool", "str", "complex", "object"])
def test_metric_refuses_non_real_input(metric, bad):
    with pytest.raises(TypeError, match="expected a real \\(float or int\\) array or number"):
        metric(bad, np.zeros(2))


@pytest.mark.parametrize("threshold, error",
                         [(0.0, ValueError), (-1e-7, ValueError), (float("nan"), ValueError),
                          ("2e-7", TypeError), (True, TypeError)])
def test_norm_ratio_passes_refuses_a_bad_threshold(threshold, error):
    with pytest.raises(error, match="threshold: got"):
        gradcheck.norm_ratio_passes([1.0], [1.0], threshold=threshold)


def _tanh_inputs():
    return {"x": np.random.default_rng(3).standard_normal((3, 4))}


@pytest.mark.parametrize("metric", ["cs231n_rel_error", "norm_ratio"])
def test_check_gradients_with_a_tutorial_metric(metric):
    """A correct backward scores near 0; one 1 % too large scores 0.01 / 2.01 in both ratios.

    |1.01 g - g| / (|1.01 g| + |g|) = 0.01 / 2.01 element by element and for the norms. The
    correct score is element-wise for cs231n: 2.4e-8 here (an element of the gradient near 0
    carries central differences' rounding), where the norm ratio gives about 1e-10.
    """
    good = gradcheck.check_gradients(ops.tanh_forward, _tanh_inputs(), ops.tanh_backward,
                                     metric=metric)
    assert good["x"] < 1e-6

    def wrong_backward(dy, cache):
        return 1.01 * ops.tanh_backward(dy, cache)

    bad = gradcheck.check_gradients(ops.tanh_forward, _tanh_inputs(), wrong_backward,
                                    metric=metric)
    # up to the correct backward's own score (the numeric gradient's error)
    assert bad["x"] == pytest.approx(0.01 / 2.01, abs=1e-7)


def test_check_loss_gradients_with_a_function_as_metric():
    labels = np.array([0, 2])
    logits = np.array([[1.0, -0.5, 0.25], [0.0, 2.0, -1.0]])
    errors = gradcheck.check_loss_gradients(
        lambda logits: ops.softmax_cross_entropy(logits, labels), {"logits": logits},
        metric=gradcheck.mean_abs_difference)
    assert errors["logits"] < 1e-9
    default = gradcheck.check_loss_gradients(
        lambda logits: ops.softmax_cross_entropy(logits, labels), {"logits": logits})
    by_name = gradcheck.check_loss_gradients(
        lambda logits: ops.softmax_cross_entropy(logits, labels), {"logits": logits},
        metric="relative_error")
    assert default == by_name


@pytest.mark.parametrize("metric, error, text",
                         [("rel_err", ValueError, "metric: got 'rel_err', expected one of "
                                                  "cs231n_rel_error, mean_abs_difference"),
                          (3, TypeError, "metric: got 3, expected a metric name or a function")])
def test_check_gradients_refuses_an_unknown_metric(metric, error, text):
    with pytest.raises(error, match=text):
        gradcheck.check_gradients(ops.tanh_forward, _tanh_inputs(), ops.tanh_backward,
                                  metric=metric)
