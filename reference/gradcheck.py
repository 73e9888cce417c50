"""Central-difference gradient checks, float64 only.

Two entry points:

- ``check_gradients(forward, inputs, backward)`` for a forward/backward pair: draw a random
  upstream gradient dy, and compare each analytic gradient returned by ``backward(dy, cache)``
  with the central differences of the scalar ``sum(forward(...)[0] * dy)``.
- ``check_loss_gradients(loss_fn, inputs)`` for a loss that returns its own gradients
  (``softmax_cross_entropy``, ``mse``, ``l2_regularization``).

Both return ``{input name: relative error}``; ``relative_error`` says how it is measured.
Central differences with eps = 1e-6 are accurate to about 1e-9 relative in float64 (truncation
~eps**2, rounding ~1e-16 / eps), so a correct backward scores far below 1e-6 as long as the
inputs stay away from kinks (ReLU at 0, ties in a max) by much more than eps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["numerical_gradient", "relative_error", "check_gradients", "check_loss_gradients"]


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
                    eps: float = 1e-6) -> dict[str, float]:
    """Compare an analytic backward with central differences, one input at a time.

    forward:  ``forward(**inputs) -> (y, cache, ...)`` (extra return values are ignored), e.g.
              ``lambda x, w, b: ops.conv2d_forward(x, w, b, stride=2, padding=1)``.
    inputs:   name -> array, passed to ``forward`` as keyword arguments (those in ``wrt`` as
              float64).
    backward: ``backward(dy, cache)`` returning one gradient or a tuple of them, in the order
              of ``wrt``.
    wrt:      the input names the gradients belong to (default: every input, in order).

    The scalar probed is ``L = sum(y * dy)`` with dy ~ N(0, 1) from ``seed``, so that
    dL/dinput = backward(dy, cache). Returns ``{name: relative_error(analytic, numeric)}``.
    """
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

        errors[name] = relative_error(grad, numerical_gradient(probe, inputs[name], eps))
    return errors


def check_loss_gradients(loss_fn: Callable[..., tuple], inputs: Mapping[str, np.ndarray],
                         wrt: Sequence[str] | None = None,
                         eps: float = 1e-6) -> dict[str, float]:
    """Compare a loss's own gradients with central differences of the loss.

    loss_fn: ``loss_fn(**inputs) -> (loss, grads)`` where grads is one array or a tuple in the
             order of ``wrt`` (default: every input), e.g.
             ``lambda logits: ops.softmax_cross_entropy(logits, labels)``.
    Returns ``{name: relative_error(analytic, numeric)}``.
    """
    inputs, wrt = _float64_inputs(inputs, wrt)
    analytic = _as_tuple(loss_fn(**inputs)[1])
    if len(analytic) != len(wrt):
        raise ValueError(f"loss_fn returned {len(analytic)} gradients for wrt={wrt}")
    errors = {}
    for name, grad in zip(wrt, analytic):
        def probe(value, name=name):
            return loss_fn(**{**inputs, name: value})[0]

        errors[name] = relative_error(grad, numerical_gradient(probe, inputs[name], eps))
    return errors
