"""The six textbook update rules of docs/models.md, in NumPy.

    opt = build_optimizer("adam", model, lr=1e-3)        # a Model's arrays, or
    opt = build_optimizer("adam", {"x": x, "y": y}, lr=0.3)  # a plain dict name -> ndarray
    model.backward(dlogits)
    opt.step(model.grads)                                # grads: a dict with the same keys

Each rule is one function ``rule(w, g, state, lr, hp)`` that updates the parameter array ``w``
IN PLACE (the model holds the same array) from its gradient ``g``, its own ``state`` dict
(accumulators start at 0 on the first step) and the hyperparameters ``hp``; ``_RULES`` maps
the names to them. Coupled weight decay is added to the gradient before the rule sees it.

``implementation`` is accepted for symmetry with the framework backends, which offer
"native" (torch.optim / keras.optimizers) and "textbook" (this file, mirrored with their tensor
ops); NumPy has only the textbook, so "auto", "textbook" and "native" all mean it. ``form``
picks a variant of a rule (_checks.OPTIMIZER_FORMS): Adam's "eps_hat" is tutorial 002's and
Keras' (``_adam_eps_hat``); AdaGrad's and RMSProp's "eps_inside" are Keras'.

The rules update in place (``m *= b1; m += ...``) rather than ``m[...] = b1 * m + ...``: the
same arithmetic in the same order, with fewer temporaries.

Hyperparameters are Python floats: NumPy 2 treats Python floats as "weak" scalars, so a float32
model stays float32 through every update.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _checks
from .models import Model

__all__ = ["OPTIMIZERS", "HYPERPARAMETERS", "IMPLEMENTATIONS", "Optimizer", "build_optimizer"]

OPTIMIZERS = tuple(_checks.OPTIMIZER_DEFAULTS)
# Each rule's hyperparameters with PyTorch's names and defaults (checked in impls/_checks.py,
# shared by the three backends).
HYPERPARAMETERS = _checks.OPTIMIZER_DEFAULTS
IMPLEMENTATIONS = _checks.IMPLEMENTATIONS


# ---------------------------------------------------------------------------------------------
# the update rules (state starts at 0; g already includes weight_decay * w)


def _zeros(state: dict, key: str, w: np.ndarray) -> np.ndarray:
    """The accumulator ``key`` of this parameter, created as zeros on the first step."""
    if key not in state:
        state[key] = np.zeros_like(w)
    return state[key]


def _sgd(w, g, state, lr, hp):
    # w -= lr g
    w -= lr * g


def _momentum(w, g, state, lr, hp):
    # v = momentum v - lr g; w += v
    v = _zeros(state, "v", w)
    v[...] = hp["momentum"] * v - lr * g
    w += v


def _nesterov(w, g, state, lr, hp):
    # v = momentum v - lr g; w += momentum v - lr g   (the look-ahead step, Sutskever's form)
    v = _zeros(state, "v", w)
    v[...] = hp["momentum"] * v - lr * g
    w += hp["momentum"] * v - lr * g


def _adagrad(w, g, state, lr, hp):
    # h += g^2; w -= lr g / (sqrt(h) + eps)
    h = _zeros(state, "h", w)
    h += g * g
    w -= lr * g / (np.sqrt(h) + hp["eps"])


def _rmsprop(w, g, state, lr, hp):
    # h = alpha h + (1 - alpha) g^2; w -= lr g / (sqrt(h) + eps)
    h = _zeros(state, "h", w)
    h[...] = hp["alpha"] * h + (1 - hp["alpha"]) * (g * g)
    w -= lr * g / (np.sqrt(h) + hp["eps"])


def _adam(w, g, state, lr, hp):
    # m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    # w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   (eps outside the square root)
    b1, b2 = hp["beta1"], hp["beta2"]
    m, v = _zeros(state, "m", w), _zeros(state, "v", w)
    t = state["t"] = state.get("t", 0) + 1
    m *= b1
    m += (1 - b1) * g
    v *= b2
    v += (1 - b2) * (g * g)
    denominator = np.sqrt(v / (1 - b2**t))
    denominator += hp["eps"]
    step = m / (1 - b1**t)
    step *= lr
    step /= denominator
    w -= step


def _adam_eps_hat(w, g, state, lr, hp):
    # form "eps_hat" (tutorial 002, Keras' Adam): m += (1 - b1)(g - m); v += (1 - b2)(g^2 - v);
    # lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); w -= lr_t m / (sqrt(v) + eps)   (eps uncorrected)
    b1, b2 = hp["beta1"], hp["beta2"]
    m, v = _zeros(state, "m", w), _zeros(state, "v", w)
    t = state["t"] = state.get("t", 0) + 1
    m += (1 - b1) * (g - m)
    v += (1 - b2) * (g * g - v)
    lr_t = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
    denominator = np.sqrt(v)
    denominator += hp["eps"]
    step = m * lr_t
    step /= denominator
    w -= step


def _adagrad_eps_inside(w, g, state, lr, hp):
    # form "eps_inside" (Keras' Adagrad): h += g^2; w -= lr g / sqrt(h + eps)
    h = _zeros(state, "h", w)
    h += g * g
    w -= lr * g / np.sqrt(h + hp["eps"])


def _rmsprop_eps_inside(w, g, state, lr, hp):
    # form "eps_inside" (Keras' RMSprop): h = alpha h + (1 - alpha) g^2; w -= lr g / sqrt(h + eps)
    h = _zeros(state, "h", w)
    h[...] = hp["alpha"] * h + (1 - hp["alpha"]) * (g * g)
    w -= lr * g / np.sqrt(h + hp["eps"])


# (name, form) -> rule
_RULES = {
    ("sgd", "textbook"): _sgd,
    ("momentum", "textbook"): _momentum,
    ("nesterov", "textbook"): _nesterov,
    ("adagrad", "textbook"): _adagrad,
    ("rmsprop", "textbook"): _rmsprop,
    ("adam", "textbook"): _adam,
    ("adam", "eps_hat"): _adam_eps_hat,
    ("adagrad", "eps_inside"): _adagrad_eps_inside,
    ("rmsprop", "eps_inside"): _rmsprop_eps_inside,
}


# ---------------------------------------------------------------------------------------------
# argument checks


def _params(params: object) -> dict[str, np.ndarray]:
    """A dict name -> float ndarray, each updated in place (so writeable); 0-d arrays too."""
    if isinstance(params, dict) and not params:
        raise TypeError("params: got an empty dict, expected a non-empty dict name -> float "
                        "ndarray")
    if not isinstance(params, dict):
        raise TypeError(f"params: got {type(params).__name__}, expected a dict name -> array")
    for key, w in params.items():
        _checks.float_array(f"params[{key!r}]", w)
        if not w.flags.writeable:
            raise ValueError(f"params[{key!r}]: got a read-only array, expected a writeable "
                             "one (the update is in place)")
    return params


# ---------------------------------------------------------------------------------------------
# the optimizer


class Optimizer:
    """One textbook rule applied to a dict of parameter arrays, updated in place.

    ``Optimizer(name, params, lr=0.01, implementation="auto", form="textbook", **hyper)``:
    ``params`` maps names to arrays (``model.params`` or a plain dict); ``step(grads)`` applies
    one update from a dict with the same keys. ``form``: one of _checks.OPTIMIZER_FORMS[name]
    (adam: "textbook" or "eps_hat"). ``lr`` can be read and set between steps; ``hyper`` holds
    the resolved hyperparameters, ``state[name]`` each parameter's accumulators.
    """

    def __init__(self, name: str, params: dict[str, np.ndarray], lr: float = 0.01,
                 implementation: str = "auto", form: str = "textbook", **hyper: object):
        lr, self.hyper = _checks.optimizer(name, lr, implementation, hyper)
        self.form = _checks.optimizer_form(name, form, implementation,
                                           _checks.OPTIMIZER_FORMS[name])
        self.name = name
        self.implementation = "textbook"  # the only one NumPy has
        self.lr = lr
        self.params = _params(params)
        self.state: dict[str, dict] = {key: {} for key in self.params}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _checks.learning_rate(value)

    def step(self, grads: dict[str, np.ndarray]) -> None:
        """One update of every parameter from ``grads`` (same keys and shapes as params)."""
        rule, weight_decay = _RULES[self.name, self.form], self.hyper["weight_decay"]
        _checks.optimizer_grads(grads, self.params)
        for key, w in self.params.items():
            g = _checks.float_array(f"grads[{key!r}]", grads[key], like=w,
                                    like_name=f"params[{key!r}]")
            _checks.same_shape(f"grads[{key!r}]", g, w.shape, f"the shape of params[{key!r}]")
            if weight_decay:
                g = g + weight_decay * w  # coupled decay: part of the gradient
            rule(w, g, self.state[key], self.lr, self.hyper)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return f"Optimizer({self.name!r}, lr={self.lr!r}, form={self.form!r}, {hyper})"


def build_optimizer(name: str, params: Model | dict[str, np.ndarray], lr: float = 0.01,
                    implementation: str = "auto", form: str = "textbook",
                    **hyper: object) -> Optimizer:
    """The optimizer ``name`` over every trainable array of a Model, or over a plain dict
    name -> float ndarray (each updated in place); step it with ``opt.step(grads)``, grads a
    dict with the same keys. ``form``: "textbook" or, for adam, "eps_hat" (see Optimizer)."""
    checked = _checks.optimizer_params(params, Model, "float ndarray (updated in place)")
    if checked is None:
        checked = params.params
    return Optimizer(name, checked, lr=lr, implementation=implementation, form=form, **hyper)
