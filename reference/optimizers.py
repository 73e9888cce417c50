"""The optimizers' update rules on plain Python floats: what "correct" means for an optimizer.

Every rule of docs/models.md's table, one scalar at a time, state starting at 0, written so
that each line can be checked by hand (no arrays, no in-place tricks):

    sgd       w -= lr g
    momentum  v = momentum v - lr g;  w += v
    nesterov  v = momentum v - lr g;  w += momentum v - lr g
    adagrad   h += g^2;  w -= lr g / (sqrt(h) + eps)
    rmsprop   h = alpha h + (1 - alpha) g^2;  w -= lr g / (sqrt(h) + eps)
    adam      form "textbook": m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
              w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
              form "eps_hat" (tutorial 002's Adam, Keras' Adam, tf.train.AdamOptimizer):
              m += (1 - b1) (g - m);  v += (1 - b2) (g^2 - v);
              lr_t = lr sqrt(1 - b2^t) / (1 - b1^t);  w -= lr_t m / (sqrt(v) + eps)
    adagrad, rmsprop  form "eps_inside" (Keras' Adagrad and RMSprop): w -= lr g / sqrt(h + eps)

g includes the coupled weight decay (g + weight_decay w). The hyperparameters have the backends'
names and defaults (impls/_checks.py OPTIMIZER_DEFAULTS, checked equal by the tests).

The optimizer-path experiment of tutorial 002 section 6 lives here too: ``f(x, y) = x^2 / 20 +
y^2`` from (-7, 2), and ``path(optimizer, lr, steps, start, **hyper)`` gives the positions, step 0
being the start. ``PATHS`` holds the experiment's settings (002's lr for sgd, momentum, adagrad
and adam with 002's own hyperparameters; nesterov and rmsprop chosen here).
reference/optimizer_paths.json has the first steps of each path worked by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["DEFAULTS", "FORMS", "PATHS", "START", "STEPS", "TUTORIAL_OPTIMIZERS", "f", "grad_f",
           "update", "path", "paths"]

# Each rule's hyperparameters and defaults (PyTorch's names and values).
DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"weight_decay": 0.0},
    "momentum": {"momentum": 0.9, "weight_decay": 0.0},
    "nesterov": {"momentum": 0.9, "weight_decay": 0.0},
    "adagrad": {"eps": 1e-10, "weight_decay": 0.0},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0},
    "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
}
# The forms each rule can take ("textbook" first: the default).
FORMS: dict[str, tuple[str, ...]] = {name: ("textbook",) for name in DEFAULTS}
FORMS["adam"] = ("textbook", "eps_hat")
FORMS["adagrad"] = FORMS["rmsprop"] = ("textbook", "eps_inside")

# The forms and hyperparameters each tutorial's optimizers use (/work/shared/seeds, read for the
# settings): tutorial -> optimizer -> {"form", hyperparameters, "source"}. lr is the recipe's
# business (reference/recipes.py); the defaults of the tutorial's class are given where it
# has one.
TUTORIAL_OPTIMIZERS: dict[str, dict[str, dict[str, object]]] = {
    "000": {"adam": {"form": "textbook", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                     "source": "its Adam class: m, v bias-corrected, eps 1e-08 added to "
                               "sqrt(v_corrected); t incremented before the first update"}},
    "001": {"adam": {"form": "textbook", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                     "source": "Solver(update_rule='adam'): cs231n optim.py's adam (not "
                               "printed in the tutorial; its starter code asks for t to be "
                               "incremented before use): mt / (sqrt(vt) + 1e-8)"}},
    "002": {"sgd": {"form": "textbook", "source": "class SGD: w -= lr g"},
            "momentum": {"form": "textbook", "momentum": 0.9,
                         "source": "class Momentum: v = 0.9 v - lr g; w += v"},
            "adagrad": {"form": "textbook", "eps": 1e-7,
                        "source": "class AdaGrad: w -= lr g / (sqrt(h) + 1e-7), "
                                  "1e-7 outside the root"},
            "rmsprop": {"form": "textbook", "alpha": 0.99, "eps": 1e-7,
                        "source": "RMSprop() named but not printed; the book's class: h = "
                                  "0.99 h + 0.01 g^2; w -= lr g / (sqrt(h) + 1e-7)"},
            "adam": {"form": "eps_hat", "beta1": 0.9, "beta2": 0.999, "eps": 1e-7,
                     "source": "class Adam: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); m += (1 - "
                               "b1)(g - m); w -= lr_t m / (sqrt(v) + 1e-7)"}},
    "003": {"adam": {"form": "eps_hat", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                     "source": "tf.train.AdamOptimizer(learning_rate=0.0001): TF1's Adam, "
                               "whose epsilon is the paper's epsilon hat (default 1e-8)"}},
    "004": {"adam": {"form": "eps_hat", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
                     "source": "tf.compat.v1.train.AdamOptimizer(learning_rate=0.005): the "
                               "same class"}},
}

START = (-7.0, 2.0)
STEPS = 30
# The optimizer-path experiment (002 section 6): lr and hyperparameters per optimizer.
# 002's SGD/Momentum/AdaGrad/Adam classes: Momentum's momentum 0.9; AdaGrad adds 1e-7 outside
# the root; Adam is the eps-hat form with betas (0.9, 0.999) and 1e-7. 002 shows no RMSProp code
# (its "RMSprop()" is the book's class: decay 0.99, 1e-7 outside the root, lr 0.01, which moves
# (-7, 2) by less than 2 in 30 steps); lr 0.1 is chosen here so that its path is seen. Nesterov
# is not in 002: the same lr and momentum as Momentum, to compare the two.
PATHS: dict[str, dict[str, object]] = {
    "sgd": {"lr": 0.95},
    "momentum": {"lr": 0.1, "momentum": 0.9},
    "nesterov": {"lr": 0.1, "momentum": 0.9},
    "adagrad": {"lr": 1.5, "eps": 1e-7},
    "rmsprop": {"lr": 0.1, "alpha": 0.99, "eps": 1e-7},
    "adam": {"lr": 0.3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, "form": "eps_hat"},
}


def f(x: float, y: float) -> float:
    """002's bowl: x^2 / 20 + y^2 (minimum 0 at the origin)."""
    return x * x / 20.0 + y * y


def grad_f(x: float, y: float) -> tuple[float, float]:
    """The gradient of f: (x / 10, 2 y)."""
    return x / 10.0, 2.0 * y


def _real(name: str, value: object, low: float, high: float | None = None,
          low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: got {value!r}, expected a real number")
    value = float(value)
    bad = (not math.isfinite(value) or value < low or (low_open and value == low)
           or (high is not None and value >= high))
    if bad:
        interval = f"{'(' if low_open else '['}{low}, {'inf)' if high is None else f'{high})'}"
        raise ValueError(f"{name}: got {value!r}, expected a number in {interval}")
    return value


def _hyper(optimizer: object, form: object, hyper: Mapping[str, object]) -> dict[str, float]:
    """Check the rule's name, form and hyperparameters; return every one (defaults filled)."""
    if not isinstance(optimizer, str) or optimizer not in DEFAULTS:
        raise ValueError(f"optimizer: got {optimizer!r}, expected one of {', '.join(DEFAULTS)}")
    if form not in FORMS[optimizer]:
        raise ValueError(f"form: got {form!r}, expected one of "
                         f"{', '.join(map(repr, FORMS[optimizer]))} for {optimizer}")
    unknown = sorted(set(hyper) - set(DEFAULTS[optimizer]))
    if unknown:
        raise TypeError(f"hyperparameters: got {unknown} for {optimizer}, expected some of "
                        f"{sorted(DEFAULTS[optimizer])}")
    checked = {}
    for key, default in DEFAULTS[optimizer].items():
        value = hyper.get(key, default)
        if key == "weight_decay":
            checked[key] = _real(key, value, 0.0)
        elif key == "eps":
            checked[key] = _real(key, value, 0.0, low_open=True)
        else:  # momentum, alpha, beta1, beta2: [0, 1)
            checked[key] = _real(key, value, 0.0, 1.0)
    if optimizer == "nesterov" and checked["momentum"] == 0.0:
        raise ValueError("momentum: got 0.0, expected a number in (0, 1) for nesterov")
    return checked


def _rule(optimizer: str, form: str, w: float, g: float, state: dict, lr: float,
          hp: dict[str, float]) -> float:
    """One update of the scalar w; ``state`` (this parameter's) is updated; returns the new w."""
    g = g + hp["weight_decay"] * w
    if optimizer == "sgd":
        return w - lr * g
    if optimizer in ("momentum", "nesterov"):
        v = hp["momentum"] * state.get("v", 0.0) - lr * g
        state["v"] = v
        return w + v if optimizer == "momentum" else w + hp["momentum"] * v - lr * g
    if optimizer in ("adagrad", "rmsprop"):
        if optimizer == "adagrad":
            h = state.get("h", 0.0) + g * g
        else:
            h = hp["alpha"] * state.get("h", 0.0) + (1.0 - hp["alpha"]) * g * g
        state["h"] = h
        if form == "eps_inside":
            return w - lr * g / math.sqrt(h + hp["eps"])
        return w - lr * g / (math.sqrt(h) + hp["eps"])
    b1, b2, eps = hp["beta1"], hp["beta2"], hp["eps"]
    t = state["t"] = state.get("t", 0) + 1
    m, v = state.get("m", 0.0), state.get("v", 0.0)
    if form == "textbook":
        m = b1 * m + (1.0 - b1) * g
        v = b2 * v + (1.0 - b2) * g * g
        state["m"], state["v"] = m, v
        m_hat, v_hat = m / (1.0 - b1**t), v / (1.0 - b2**t)
        return w - lr * m_hat / (math.sqrt(v_hat) + eps)
    # eps_hat: the bias corrections folded into the step size, eps on the uncorrected sqrt(v)
    m = m + (1.0 - b1) * (g - m)
    v = v + (1.0 - b2) * (g * g - v)
    state["m"], state["v"] = m, v
    lr_t = lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
    return w - lr_t * m / (math.sqrt(v) + eps)


def update(optimizer: str, params: Mapping[str, float], grads: Mapping[str, float],
           state: dict, lr: float, form: str = "textbook", **hyper: object) -> dict[str, float]:
    """One update of every scalar parameter: the new values (``params`` is not changed).

    ``state`` starts as ``{}`` and is updated (one dict per parameter name, created on the first
    call); pass the same dict at every step.
    """
    hp = _hyper(optimizer, form, hyper)
    lr = _real("lr", lr, 0.0, low_open=True)
    if not isinstance(params, Mapping) or not params:
        raise TypeError(f"params: got {params!r}, expected a non-empty dict name -> float")
    if not isinstance(grads, Mapping) or set(grads) != set(params):
        raise KeyError(f"grads: got keys {sorted(grads) if isinstance(grads, Mapping) else grads!r}"
                       f", expected the keys of params {sorted(params)}")
    if not isinstance(state, dict):
        raise TypeError(f"state: got {state!r}, expected a dict (start with {{}})")
    new = {}
    for key, w in params.items():
        w = _real(f"params[{key!r}]", w, -math.inf)
        g = _real(f"grads[{key!r}]", grads[key], -math.inf)
        new[key] = _rule(optimizer, form, w, g, state.setdefault(key, {}), lr, hp)
    return new


def path(optimizer: str, lr: float, steps: int = STEPS, start: tuple[float, float] = START,
         form: str = "textbook", **hyper: object) -> list[tuple[float, float]]:
    """The positions (x, y) of ``steps`` updates of ``optimizer`` on f from ``start``; element 0
    is the start, so the list has steps + 1 points. ``hyper``: the rule's hyperparameters
    (``PATHS[optimizer]`` holds the experiment's, lr and form included)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps: got {steps!r}, expected an integer >= 0")
    if not isinstance(start, (tuple, list)) or len(start) != 2:
        raise ValueError(f"start: got {start!r}, expected a pair (x, y)")
    x, y = (_real("start", value, -math.inf) for value in start)
    params, state = {"x": x, "y": y}, {}
    points = [(x, y)]
    for _ in range(steps):
        gx, gy = grad_f(params["x"], params["y"])
        params = update(optimizer, params, {"x": gx, "y": gy}, state, lr, form, **hyper)
        points.append((params["x"], params["y"]))
    return points


def paths(steps: int = STEPS, start: tuple[float, float] = START) -> dict[str, list]:
    """Every optimizer's path with the experiment's settings (PATHS)."""
    return {name: path(name, steps=steps, start=start, **settings)
            for name, settings in PATHS.items()}
