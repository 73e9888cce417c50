"""Central-difference gradient checks, float64 only.

Two entry points:

- ``check_gradients(forward, inputs, backward)`` for a forward/backward pair: draw a random
  upstream gradient dy, and compare each analytic gradient returned by ``backward(dy, cache)``
  with the central differences of the scalar ``sum(forward(...)[0] * dy)``.
- ``check_loss_gradients(loss_fn, inputs)`` for a loss that returns its own gradients
  (``softmax_cross_entropy``, ``mse``, ``l2_regularization``).

Both return ``{input name: relative error}``; ``relative_error`` says how it is measured.
``metric=`` swaps in one of the tutorials' own measures (below) so that their printed errors can
be compared with the project's. Central differences with eps = 1e-6 are accurate to about 1e-9
relative in float64 (truncation ~eps**2, rounding ~1e-16 / eps), so a correct backward scores
far below 1e-6 as long as the inputs stay away from kinks (ReLU at 0, ties in a max) by much more
than eps.

The tutorials' gradient-check metrics (docs/tutorials.md says which tutorial prints which):

- ``cs231n_rel_error(x, y)``: cs231n's ``rel_error`` (001), the largest element-wise ratio
  ``|x - y| / max(1e-8, |x| + |y|)``; its notebooks expect about 1e-8 to 1e-9 for a correct
  backward. Element-wise, so it is large wherever a gradient is tiny and noisy.
- ``norm_ratio(grad, gradapprox)``: deeplearning.ai's ``difference`` (000's ``grad_check``),
  ``||grad - gradapprox||_2 / (||grad||_2 + ||gradapprox||_2)`` over all parameters flattened,
  judged against ``NORM_RATIO_THRESHOLD`` = 2e-7 ("a mistake in the backward propagation" above).
- ``mean_abs_difference(a, b)``: "Deep Learning from Scratch"'s ``gradient_check.py``, the mean of
  ``|a - b|``. 002 computes the numerical gradient (h = 1e-4) but prints no comparison; the
  book's own script does, with this measure. It is absolute: its size depends on the gradient's.

None of them replaces ``relative_error``: the tests judge with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["numerical_gradient", "relative_error", "check_gradients", "check_loss_gradients",
           "cs231n_rel_error", "norm_ratio", "mean_abs_difference", "norm_ratio_passes",
           "NORM_RATIO_THRESHOLD", "TUTORIAL_METRICS"]

# deeplearning.ai's threshold for norm_ratio (000's grad_check: "difference > 2e-7" is a mistake)
NORM_RATIO_THRESHOLD = 2e-7
# cs231n's floor on the denominator of rel_error, so that two zeros compare as 0, not 0 / 0
CS231N_FLOOR = 1e-8


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray,
                       eps: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar function: g[i] = (f(x + eps e_i) - f(x - eps e_i)) / 2 eps.

    ``x`` is converted to float64 and never modified (each probe works on a private copy).
    """
    x = np.array(x, dtype=np.float64)  # a private copy, nudged in place below
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        original = x[idx]
        x[idx] = original + eps
        f_plus = float(f(x))
        x[idx] = original - eps
        f_minus = float(f(x))
        x[idx] = original
        grad[idx] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(max |a|, max |n|): the error relative to the largest magnitude.

    Element-wise relative error is meaningless where the gradient is ~0 (rounding noise of 1e-10
    on an element of 1e-9 reads as 10 %), so the error is normalised by the whole array's scale.
    Returns 0.0 when both arrays are all zeros; a shape mismatch is an error, not a number.
    """
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic gradient has shape {a.shape}, numeric {n.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(n)))
    return 0.0 if scale == 0 else float(np.max(np.abs(a - n)) / scale)


def _pair(name_a: str, a: object, name_b: str, b: object) -> tuple[np.ndarray, np.ndarray]:
    """Two real arrays of one shape, at least one element, as float64 (a metric's arguments)."""
    arrays = []
    for name, value in ((name_a, a), (name_b, b)):
        arr = np.asarray(value)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                       or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name}: got {_describe(value)}, expected a real (float or int) "
                            "array or number")
        arrays.append(arr.astype(np.float64))
    x, y = arrays
    if x.shape != y.shape:
        raise ValueError(f"{name_b}: got shape {y.shape}, expected {x.shape} (the shape of "
                         f"{name_a})")
    if x.size == 0:
        raise ValueError(f"{name_a}: got an empty array of shape {x.shape}, expected at least "
                         "one element (a metric of nothing is undefined)")
    return x, y


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def cs231n_rel_error(x: object, y: object) -> float:
    """cs231n's ``rel_error``: max over elements of |x - y| / max(1e-8, |x| + |y|).

    Symmetric in x and y (001 calls it both ways round). NaN anywhere gives NaN. Equal arrays
    give 0.0; where both are 0 the floor 1e-8 keeps it 0 instead of 0 / 0.
    """
    x, y = _pair("x", x, "y", y)
    return float(np.max(np.abs(x - y) / np.maximum(CS231N_FLOOR, np.abs(x) + np.abs(y))))


def norm_ratio(grad: object, gradapprox: object) -> float:
    """deeplearning.ai's gradient-check ``difference``: ||g - g_num|| / (||g|| + ||g_num||).

    Euclidean norms over every element (000 flattens all parameters into one vector first: pass
    the concatenation to compare with its printed number). Between 0 (equal) and 1 (opposite, or
    one of them zero); both zero gives 0.0 where the tutorial would divide 0 by 0. Compare with
    ``NORM_RATIO_THRESHOLD`` (2e-7), or use ``norm_ratio_passes``.
    """
    g, n = _pair("grad", grad, "gradapprox", gradapprox)
    denominator = np.linalg.norm(g.ravel()) + np.linalg.norm(n.ravel())
    numerator = np.linalg.norm((g - n).ravel())
    if denominator == 0:
        return 0.0
    return float(numerator / denominator)


def norm_ratio_passes(grad: object, gradapprox: object,
                      threshold: float = NORM_RATIO_THRESHOLD) -> bool:
    """True where 000's grad_check prints "works perfectly fine": norm_ratio <= threshold."""
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float,
                                                                             np.floating)):
        raise TypeError(f"threshold: got {_describe(threshold)}, expected a positive number")
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold: got {threshold!r}, expected a finite number > 0")
    return bool(norm_ratio(grad, gradapprox) <= threshold)  # 000 fails only on "> 2e-7"


def mean_abs_difference(a: object, b: object) -> float:
    """"Deep Learning from Scratch"'s gradient-check measure: the mean of |a - b|.

    Absolute, not relative: a gradient scaled by 10 scores 10 times as much.
    """
    x, y = _pair("a", a, "b", b)
    return float(np.mean(np.abs(x - y)))


# metric name -> function(analytic, numeric), for check_gradients(..., metric=...)
TUTORIAL_METRICS: dict[str, Callable[[object, object], float]] = {
    "relative_error": relative_error,
    "cs231n_rel_error": cs231n_rel_error,
    "norm_ratio": norm_ratio,
    "mean_abs_difference": mean_abs_difference,
}


def _metric(metric: object) -> Callable[[object, object], float]:
    """A metric given by name (a key of TUTORIAL_METRICS) or as a function of two arrays."""
    if isinstance(metric, str):
        if metric not in TUTORIAL_METRICS:
            raise ValueError(f"metric: got {metric!r}, expected one of "
                             f"{', '.join(sorted(TUTORIAL_METRICS))} or a function")
        return TUTORIAL_METRICS[metric]
    if not callable(metric):
        raise TypeError(f"metric: got {_describe(metric)}, expected a metric name or a function "
                        "of (analytic, numeric)")
    return metric


def _as_tuple(grads: object) -> tuple:
    return tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)


def _float64_inputs(inputs: Mapping[str, object],
                    wrt: Sequence[str] | None) -> tuple[dict[str, object], list[str]]:
    """The inputs with those differentiated (``wrt``, default all) as float64 arrays."""
    wrt = list(inputs) if wrt is None else list(wrt)
    return {name: np.asarray(value, dtype=np.float64) if name in wrt else value
            for name, value in inputs.items()}, wrt


def check_gradients(forward: Callable[..., tuple], inputs: Mapping[str, np.ndarray],
                    backward: Callable[[np.ndarray, object], object],
                    wrt: Sequence[str] | None = None, seed: int = 0,
                    eps: float = 1e-6, metric: str | Callable = "relative_error"
                    ) -> dict[str, float]:
    """Compare an analytic backward with central differences, one input at a time.

    forward:  ``forward(**inputs) -> (y, cache, ...)`` (extra return values are ignored), e.g.
              ``lambda x, w, b: ops.conv2d_forward(x, w, b, stride=2, padding=1)``.
    inputs:   name -> array, passed to ``forward`` as keyword arguments (those in ``wrt`` as
              float64).
    backward: ``backward(dy, cache)`` returning one gradient or a tuple of them, in the order
              of ``wrt``.
    wrt:      the input names the gradients belong to (default: every input, in order).

    The scalar probed is ``L = sum(y * dy)`` with dy ~ N(0, 1) from ``seed``, so that
    dL/dinput = backward(dy, cache). Returns ``{name: metric(analytic, numeric)}``; ``metric``
    is a name of ``TUTORIAL_METRICS`` (default the project's ``relative_error``) or a function.
    """
    measure = _metric(metric)
    inputs, wrt = _float64_inputs(inputs, wrt)
    y, cache = forward(**inputs)[:2]
    dy = np.random.default_rng(seed).standard_normal(np.shape(y))
    analytic = _as_tuple(backward(dy, cache))
    if len(analytic) != len(wrt):
        raise ValueError(f"backward returned {len(analytic)} gradients for wrt={wrt}")
    errors = {}
    for name, grad in zip(wrt, analytic):
        def probe(value, name=name):
            return np.sum(forward(**{**inputs, name: value})[0] * dy)

        errors[name] = measure(grad, numerical_gradient(probe, inputs[name], eps))
    return errors


def check_loss_gradients(loss_fn: Callable[..., tuple], inputs: Mapping[str, np.ndarray],
                         wrt: Sequence[str] | None = None,
                         eps: float = 1e-6, metric: str | Callable = "relative_error"
                         ) -> dict[str, float]:
    """Compare a loss's own gradients with central differences of the loss.

    loss_fn: ``loss_fn(**inputs) -> (loss, grads)`` where grads is one array or a tuple in the
             order of ``wrt`` (default: every input), e.g.
             ``lambda logits: ops.softmax_cross_entropy(logits, labels)``.
    Returns ``{name: metric(analytic, numeric)}`` (``metric`` as in ``check_gradients``).
    """
    measure = _metric(metric)
    inputs, wrt = _float64_inputs(inputs, wrt)
    analytic = _as_tuple(loss_fn(**inputs)[1])
    if len(analytic) != len(wrt):
        raise ValueError(f"loss_fn returned {len(analytic)} gradients for wrt={wrt}")
    errors = {}
    for name, grad in zip(wrt, analytic):
        def probe(value, name=name):
            return loss_fn(**{**inputs, name: value})[0]

        errors[name] = measure(grad, numerical_gradient(probe, inputs[name], eps))
    return errors
