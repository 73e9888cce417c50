"""The six optimizers of docs/models.md: Keras' own ("native") or the textbook table in TF ops.

    opt = build_optimizer("adam", model, lr=1e-3)          # implementation="auto"
    opt = build_optimizer("adam", {"x": tf.Variable(-7.0, dtype=tf.float64)}, lr=0.3)
    opt.step(grads)                                        # name -> gradient (TF layout)
    opt.lr = 1e-4                                          # seen by a compiled step too

``implementation``: "native" = ``keras.optimizers`` configured as close to the textbook as it
allows; "textbook" = docs/models.md's table written with TensorFlow ops (``_Textbook``, a Keras
optimizer whose ``update_step`` is the table, so both run the same way inside ``tf.function``);
"auto" = native for sgd, momentum and nesterov (identical to the textbook), textbook for
adagrad, rmsprop and adam, and native for adam with ``form="eps_hat"`` (Keras' Adam IS that
form: tutorial 002's, see docs/models.md; ``_Textbook._adam_eps_hat`` is the same in TF ops) and
for adagrad and rmsprop with ``form="eps_inside"`` (Keras' own, footnote (1) below).
How Keras 3.15 differs (keras/src/optimizers/*.py, each row confirmed by a test in
parity_tests/test_tensorflow_models.py):

| name | native | Keras' update | versus the textbook |
| --- | --- | --- | --- |
| sgd | SGD() | w -= lr g | the same |
| momentum | SGD(momentum) | v = mu v - lr g; w += v | the same, also after an lr change |
| nesterov | SGD(momentum, nesterov) | v = mu v - lr g; w += mu v - lr g | the same |
| adagrad | Adagrad(0, eps) | h += g^2; w -= lr g / sqrt(h + eps) | eps inside the root (1) |
| rmsprop | RMSprop(alpha, eps) | h = a h + (1 - a) g^2; w -= lr g / sqrt(h + eps) | idem (1) |
| adam | Adam(b1, b2, eps) | w -= lr_t m / (sqrt(v) + eps) | epsilon hat (2) |

Adagrad(0, eps) is ``Adagrad(initial_accumulator_value=0.0, epsilon=eps)``: Keras' default
initial accumulator is 0.1 where the textbook's h starts at 0. Keras' default epsilons (1e-7)
and RMSprop's default rho (0.9) differ from PyTorch's too; they are always passed here.

(1) Eps inside the root matters where g^2 is comparable to eps (gradients ~1e-4 and smaller
for eps 1e-8): there the native step is ~lr g / sqrt(eps) instead of ~lr.
(2) Keras folds the bias corrections into lr_t = lr sqrt(1 - b2^t) / (1 - b1^t) and adds eps
to the UNcorrected sqrt(v): the textbook's eps is Keras' eps / sqrt(1 - b2^t) (30x larger at
t = 1 for b2 = 0.999), which matters for small gradients in the first steps.

Also handled here, for both implementations:

- weight decay: Keras' ``weight_decay`` argument is DECOUPLED (base_optimizer.py
  ``_apply_weight_decay``: w -= lr wd w, before the update, AdamW style); the contract's is
  coupled, so ``step`` adds wd * w to the gradient and Keras' argument stays None.
- float64: ``ops.cast(0.9, "float64")`` in Keras goes through float32 (0.8999999761581421),
  and SGD's momentum and Adam's bias-correction betas pass through it; a NumPy float64 is a
  Python float to Keras' checks but casts exactly, so float64 models hand Keras np.float64
  hyperparameters. Keras' own learning-rate variable is float32 (floatx): the learning rate
  is a variable of the model's dtype here, given to Keras as a callable, which a compiled step
  reads at every call (setting ``opt.lr`` never retraces).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .. import _checks
from .models import Model

__all__ = ["OPTIMIZERS", "HYPERPARAMETERS", "IMPLEMENTATIONS", "Optimizer", "build_optimizer"]

OPTIMIZERS = tuple(_checks.OPTIMIZER_DEFAULTS)
# Each rule's hyperparameters with PyTorch's names and defaults (checked in impls/_checks.py,
# shared by the three backends).
HYPERPARAMETERS = _checks.OPTIMIZER_DEFAULTS
IMPLEMENTATIONS = _checks.IMPLEMENTATIONS
# "auto", per (name, form): native where Keras computes that form (see the table above)
_AUTO = {("sgd", "textbook"): "native", ("momentum", "textbook"): "native",
         ("nesterov", "textbook"): "native", ("adagrad", "textbook"): "textbook",
         ("rmsprop", "textbook"): "textbook", ("adam", "textbook"): "textbook",
         ("adam", "eps_hat"): "native", ("adagrad", "eps_inside"): "native",
         ("rmsprop", "eps_inside"): "native"}


# ---------------------------------------------------------------------------------------------
# the textbook rules (state starts at 0; g already includes weight_decay * w)


class _Textbook(keras.optimizers.Optimizer):
    """docs/models.md's table with TensorFlow ops: one Keras optimizer, ``update_step`` per rule.

    Hyperparameters stay Python floats: a TensorFlow op converts a Python float straight to the
    other operand's dtype (exact in float64, rounded once in float32).
    """

    _STATE = {"sgd": (), "momentum": ("v",), "nesterov": ("v",), "adagrad": ("h",),
              "rmsprop": ("h",), "adam": ("m", "v")}

    def __init__(self, rule: str, learning_rate, hyper: dict[str, float],
                 form: str = "textbook"):
        super().__init__(learning_rate=learning_rate, name=f"textbook_{rule}")
        self.rule = rule
        self.form = form
        self.hyper = dict(hyper)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._slots = {key: self.add_optimizer_variables(variables, key)
                      for key in self._STATE[self.rule]}

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, variable.dtype)
        g = tf.cast(gradient, variable.dtype)
        index = self._get_variable_index(variable)
        state = {key: slots[index] for key, slots in self._slots.items()}
        rule = self.rule if self.form == "textbook" else f"{self.rule}_{self.form}"
        getattr(self, f"_{rule}")(variable, g, lr, **state)

    def _sgd(self, w, g, lr):
        # w -= lr g
        self.assign_sub(w, lr * g)

    def _momentum(self, w, g, lr, v):
        # v = momentum v - lr g; w += v
        self.assign(v, self.hyper["momentum"] * v - lr * g)
        self.assign_add(w, v)

    def _nesterov(self, w, g, lr, v):
        # v = momentum v - lr g; w += momentum v - lr g
        mu = self.hyper["momentum"]
        self.assign(v, mu * v - lr * g)
        self.assign_add(w, mu * v - lr * g)

    def _adagrad(self, w, g, lr, h):
        # h += g^2; w -= lr g / (sqrt(h) + eps)
        self.assign_add(h, g * g)
        self.assign_sub(w, lr * g / (tf.sqrt(h) + self.hyper["eps"]))

    def _rmsprop(self, w, g, lr, h):
        # h = alpha h + (1 - alpha) g^2; w -= lr g / (sqrt(h) + eps)
        alpha = self.hyper["alpha"]
        self.assign(h, alpha * h + (1 - alpha) * (g * g))
        self.assign_sub(w, lr * g / (tf.sqrt(h) + self.hyper["eps"]))

    def _adagrad_eps_inside(self, w, g, lr, h):
        # form "eps_inside" (Keras' Adagrad): h += g^2; w -= lr g / sqrt(h + eps)
        self.assign_add(h, g * g)
        self.assign_sub(w, lr * g / tf.sqrt(h + self.hyper["eps"]))

    def _rmsprop_eps_inside(self, w, g, lr, h):
        # form "eps_inside" (Keras' RMSprop): h = alpha h + (1 - alpha) g^2;
        # w -= lr g / sqrt(h + eps)
        alpha = self.hyper["alpha"]
        self.assign(h, alpha * h + (1 - alpha) * (g * g))
        self.assign_sub(w, lr * g / tf.sqrt(h + self.hyper["eps"]))

    def _adam(self, w, g, lr, m, v):
        # m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
        # w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   (eps outside the root)
        b1, b2 = self.hyper["beta1"], self.hyper["beta2"]
        t = tf.cast(self.iterations + 1, tf.float64)  # Keras counts the steps already taken
        self.assign(m, b1 * m + (1 - b1) * g)
        self.assign(v, b2 * v + (1 - b2) * (g * g))
        # The bias corrections in float64, then cast, as NumPy (Python floats) and torch.optim
        # do: 1 - 0.999^t in float32 loses ~4 digits to cancellation, and the float32 runs then
        # drift visibly from the other frameworks' (5e-3 in the loss after 3 digits epochs).
        c1 = tf.cast(1 - tf.pow(tf.constant(b1, tf.float64), t), w.dtype)
        c2 = tf.cast(1 - tf.pow(tf.constant(b2, tf.float64), t), w.dtype)
        self.assign_sub(w, lr * (m / c1) / (tf.sqrt(v / c2) + self.hyper["eps"]))

    def _adam_eps_hat(self, w, g, lr, m, v):
        # form "eps_hat" (tutorial 002; Keras' Adam line for line): m += (1 - b1)(g - m);
        # v += (1 - b2)(g^2 - v); lr_t = lr sqrt(1 - b2^t) / (1 - b1^t);
        # w -= lr_t m / (sqrt(v) + eps)   (eps on the UNcorrected sqrt(v))
        b1, b2 = self.hyper["beta1"], self.hyper["beta2"]
        t = tf.cast(self.iterations + 1, tf.float64)
        self.assign_add(m, (1 - b1) * (g - m))
        self.assign_add(v, (1 - b2) * (g * g - v))
        # the bias corrections in float64, then cast (as _adam)
        c1 = 1 - tf.pow(tf.constant(b1, tf.float64), t)
        c2 = 1 - tf.pow(tf.constant(b2, tf.float64), t)
        lr_t = lr * tf.cast(tf.sqrt(c2) / c1, w.dtype)
        self.assign_sub(w, m * lr_t / (tf.sqrt(v) + self.hyper["eps"]))


def _native(name: str, learning_rate, hyper: dict[str, float],
            dtype: np.dtype) -> keras.optimizers.Optimizer:
    """Keras' optimizer for ``name``, as close to the textbook as its arguments allow."""
    # float64: np.float64 hyperparameters, exact where Keras' ops.cast would round a Python
    # float through float32 (see the module docstring); float32 computes in float32 either way
    number = np.float64 if dtype == np.float64 else float
    hp = {key: number(value) for key, value in hyper.items()}
    if name in ("sgd", "momentum", "nesterov"):
        return keras.optimizers.SGD(learning_rate, momentum=hp.get("momentum", number(0.0)),
                                    nesterov=name == "nesterov")
    if name == "adagrad":
        return keras.optimizers.Adagrad(learning_rate, initial_accumulator_value=0.0,
                                        epsilon=hp["eps"])
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, rho=hp["alpha"], epsilon=hp["eps"])
    return keras.optimizers.Adam(learning_rate, beta_1=hp["beta1"], beta_2=hp["beta2"],
                                 epsilon=hp["eps"])


# ---------------------------------------------------------------------------------------------
# argument checks


def _implementation(name: str, implementation: str, form: str) -> str:
    """"native" or "textbook" ("auto" resolved for ``name`` and ``form``)."""
    return _AUTO[name, form] if implementation == "auto" else implementation


def _native_forms(name: str) -> tuple[str, ...]:
    """The forms for which implementation="native" is accepted: Keras' Adam IS the eps-hat
    form, its Adagrad and RMSprop the eps-inside forms, and each is the closest Keras has to
    the textbook one (the table above)."""
    return _checks.OPTIMIZER_FORMS[name]


def _dtype(variable) -> np.dtype:
    # a Keras variable's dtype is a string, a tf.Variable's a tf.DType
    return np.dtype(tf.as_dtype(variable.dtype).as_numpy_dtype)


def _params(params: object) -> dict[str, keras.Variable]:
    """A dict name -> trainable variable (keras.Variable or tf.Variable), all float32 or all
    float64 (one learning-rate variable of their dtype serves them all)."""
    if not isinstance(params, dict) or not params:
        raise TypeError(f"params: got {type(params).__name__}, expected a non-empty dict "
                        "name -> trainable variable (model.params)")
    for key, v in params.items():
        if not isinstance(v, (keras.Variable, tf.Variable)):
            raise TypeError(f"params[{key!r}]: got {type(v).__name__}, expected a variable "
                            "(tf.Variable or keras.Variable)")
        if not v.trainable:
            raise ValueError(f"params[{key!r}]: got a variable with trainable=False, expected "
                             "a trainable one")
    dtypes = {_dtype(v) for v in params.values()}
    if len(dtypes) != 1 or not dtypes <= set(_checks.FLOAT_DTYPES):
        raise TypeError(f"params: got dtypes {sorted(map(str, dtypes))}, expected one of "
                        "float32 or float64 for all")
    return dict(params)


# ---------------------------------------------------------------------------------------------
# the optimizer


class Optimizer:
    """One of the six rules over a dict of variables (``model.params``), as a Keras optimizer.

    ``Optimizer(name, params, lr=0.01, implementation="auto", **hyper)``; ``step(grads)``
    applies one update from a dict with the same keys (tensors in the variables' layouts),
    eagerly or inside ``tf.function``. ``lr`` can be read and set between steps;
    ``implementation`` is the one used ("native" or "textbook"), ``hyper`` the resolved
    hyperparameters, ``keras_optimizer`` the Keras optimizer doing the work.
    """

    def __init__(self, name: str, params: dict[str, keras.Variable], lr: float = 0.01,
                 implementation: str = "auto", form: str = "textbook", **hyper: object):
        lr, self.hyper = _checks.optimizer(name, lr, implementation, hyper)
        self.form = _checks.optimizer_form(name, form, implementation, _native_forms(name))
        self.name = name
        self.implementation = _implementation(name, implementation, self.form)
        self.params = _params(params)
        self.dtype = _dtype(next(iter(self.params.values())))
        self._lr_variable = tf.Variable(0.0, dtype=self.dtype, trainable=False, name="lr")
        self.lr = lr
        rule_hyper = {k: v for k, v in self.hyper.items() if k != "weight_decay"}
        learning_rate = self._lr_variable.read_value  # a callable: read at every step
        if self.implementation == "native":
            self.keras_optimizer = _native(self.name, learning_rate, rule_hyper, self.dtype)
        else:
            self.keras_optimizer = _Textbook(self.name, learning_rate, rule_hyper, self.form)
        self.keras_optimizer.build(list(self.params.values()))
        self.compiled_step = None  # train.py's tf.function for this optimizer and its model

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _checks.learning_rate(value)
        self._lr_variable.assign(self._lr)

    def step(self, grads: dict[str, tf.Tensor]) -> None:
        """One update of every variable from ``grads`` (same keys and shapes as params)."""
        _checks.optimizer_grads(grads, self.params)
        weight_decay = self.hyper["weight_decay"]
        pairs = []
        for key, w in self.params.items():
            g = grads[key]
            if g is None:
                raise ValueError(f"grads[{key!r}]: got None (the tape saw no path from the "
                                 f"loss to params[{key!r}]), expected a tensor")
            if not isinstance(g, (tf.Tensor, tf.IndexedSlices)):
                g = tf.convert_to_tensor(g, dtype=w.dtype)  # a NumPy array or a number
            if g.dtype != tf.as_dtype(w.dtype):
                raise TypeError(f"grads[{key!r}]: got dtype {g.dtype.name}, expected "
                                f"{tf.as_dtype(w.dtype).name} to match params[{key!r}]")
            if not g.shape.is_compatible_with(w.shape):
                raise ValueError(f"grads[{key!r}]: got shape {tuple(g.shape)}, expected "
                                 f"{tuple(w.shape)} (the shape of params[{key!r}])")
            if weight_decay:
                g = g + weight_decay * w  # coupled decay: part of the gradient
            pairs.append((g, w))
        self.keras_optimizer.apply_gradients(pairs)

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.hyper.items())
        return (f"Optimizer({self.name!r}, lr={self.lr!r}, "
                f"implementation={self.implementation!r}, form={self.form!r}, {hyper})")


def build_optimizer(name: str, params: Model | dict[str, keras.Variable], lr: float = 0.01,
                    implementation: str = "auto", form: str = "textbook",
                    **hyper: object) -> Optimizer:
    """The optimizer ``name`` over every trainable variable of a Model, or over a plain dict
    name -> trainable tf.Variable / keras.Variable (all of one float dtype); step it with
    ``opt.step(grads)``, grads a dict with the same keys. ``form``: "textbook" or, for adam,
    "eps_hat", which "auto" runs as Keras' own Adam (see Optimizer)."""
    checked = _checks.optimizer_params(params, Model, "trainable tf.Variable or keras.Variable")
    return Optimizer(name, params.params if checked is None else checked, lr=lr,
                     implementation=implementation, form=form, **hyper)
