"""Argument checks shared by the three backends.

Every public op of every backend calls the checker of the same name here before it computes
anything, so that bad input fails with the same exception type and the same message in NumPy,
PyTorch and TensorFlow. Messages name the argument, what was received and what was expected.

The checkers also turn the flexible arguments (int or pair strides, the padding forms) into one
explicit form, so that each backend's op body starts from plain numbers:

- stride and kernel_size: ``(sh, sw)``
- padding: ``((top, bottom), (left, right))``; ``"same"`` follows TensorFlow's rule (the odd
  extra row/column goes bottom/right), ``"valid"`` is no padding.
- hyperparameters: Python ``int``, ``float`` and ``bool`` (``integer``, ``real``, ``boolean``
  convert), so that a NumPy scalar behaves exactly like the Python number. It would not
  otherwise: NumPy 2 treats a Python float as "weak" (a float32 array stays float32) but
  ``np.float64(0.1)`` or ``alpha / np.int64(3)`` as strong (float32 arrays silently become
  float64). Each backend computes with the values its checker returns.

Nothing here computes an op: the reference (reference/ops.py) resolves padding on its own, so a
mistake here shows up as a parity failure instead of being shared by everyone.
"""

from __future__ import annotations

import numbers
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from reference import optimizers as _reference_optimizers

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

Pads = tuple[tuple[int, int], tuple[int, int]]


class Geometry(NamedTuple):
    """Explicit geometry of a windowed op (conv or pool) after argument checking."""

    kernel: tuple[int, int]  # (kH, kW)
    stride: tuple[int, int]  # (sH, sW)
    pads: Pads  # ((top, bottom), (left, right))
    out: tuple[int, int]  # (OH, OW)


class Cache(SimpleNamespace):
    """What a forward keeps for its backward, in every backend.

    ``op`` names the forward that made it, ``shape`` and ``dtype`` are those of the forward's
    output (what ``dy`` must match); the other attributes are the backend's own.
    """

    def __init__(self, op: str, shape: tuple[int, ...], dtype: np.dtype, **data: object):
        super().__init__(op=op, shape=tuple(shape), dtype=np.dtype(dtype), **data)


# ---------------------------------------------------------------------------------------------
# building blocks


def describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def float_array(name: str, x: object, ndim: int | tuple[int, ...] | None = None,
                like: np.ndarray | None = None, like_name: str = "x") -> np.ndarray:
    """Check that ``x`` is a float32/float64 ndarray (of ``ndim`` dims, of ``like``'s dtype)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: got {describe(x)}, expected a NumPy array (np.ndarray)")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: got dtype {x.dtype}, expected float32 or float64")
    if like is not None and x.dtype != like.dtype:
        raise TypeError(
            f"{name}: got dtype {x.dtype}, expected {like.dtype} to match {like_name}"
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if x.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(
                f"{name}: got {x.ndim} dimensions (shape {x.shape}), expected {want}"
            )
    return x


def same_shape(name: str, x: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    if x.shape != tuple(shape):
        raise ValueError(f"{name}: got shape {x.shape}, expected {tuple(shape)} ({what})")


def integer(name: str, value: object, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: got {describe(value)}, expected an integer >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}: got {value}, expected an integer >= {minimum}")
    return int(value)


def int_pair(name: str, value: object, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{name}: got {describe(value)}, expected an integer or a pair of integers"
            )
        return (integer(name, value[0], minimum), integer(name, value[1], minimum))
    return (integer(name, value, minimum),) * 2


def real(name: str, value: object, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """A real number in the interval given by low/high (open or closed ends)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: got {describe(value)}, expected a real number")
    v = float(value)
    bad = (not np.isfinite(v)
           or (low is not None and (v <= low if low_open else v < low))
           or (high is not None and (v >= high if high_open else v > high)))
    if bad:
        lo = "(-inf" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + (")" if high_open else "]")
        raise ValueError(f"{name}: got {value!r}, expected a finite number in {lo}, {hi}")
    return v


def boolean(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: got {describe(value)}, expected True or False")
    return bool(value)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME rule: output ceil(size / stride); the odd extra cell goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return (total // 2, total - total // 2)


def padding_arg(padding: object, size: tuple[int, int], kernel: tuple[int, int],
                stride: tuple[int, int]) -> Pads:
    """Resolve every padding form to ((top, bottom), (left, right))."""
    if isinstance(padding, str):
        word = padding.lower()
        if word == "valid":
            return ((0, 0), (0, 0))
        if word == "same":
            return (same_padding(size[0], kernel[0], stride[0]),
                    same_padding(size[1], kernel[1], stride[1]))
        raise ValueError(
            f"padding: got {padding!r}, expected 'same', 'valid', an integer, (ph, pw) or "
            "((top, bottom), (left, right))"
        )
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(p, (tuple, list)) for p in padding
    ):
        (t, b), (l, r) = int_pair("padding", padding[0], 0), int_pair("padding", padding[1], 0)
        return ((t, b), (l, r))
    ph, pw = int_pair("padding", padding, 0)
    return ((ph, ph), (pw, pw))


def _window_geometry(x: np.ndarray, kernel: tuple[int, int], stride: object,
                     padding: object) -> Geometry:
    stride2 = int_pair("stride", stride, 1)
    pads = padding_arg(padding, x.shape[2:], kernel, stride2)
    out = []
    for axis, (size, k, s, (p0, p1)) in enumerate(zip(x.shape[2:], kernel, stride2, pads)):
        padded = size + p0 + p1
        if k > padded:
            dim = "height" if axis == 0 else "width"
            raise ValueError(
                f"kernel_size: got {kernel} whose {dim} {k} is larger than the padded input "
                f"{dim} {padded} (x shape {x.shape}, padding {pads}), expected at most {padded}"
            )
        out.append((padded - k) // s + 1)
    return Geometry(kernel, stride2, pads, (out[0], out[1]))


# ---------------------------------------------------------------------------------------------
# one checker per public op (forward); backward checks dy with `grad_output`


def conv2d(x: object, w: object, b: object, stride: object, padding: object) -> Geometry:
    """Check conv2d_forward's arguments; ``b`` may be None (a conv without bias)."""
    x = float_array("x", x, ndim=4)
    w = float_array("w", w, ndim=4, like=x)
    if b is not None:
        if not isinstance(b, np.ndarray):
            raise TypeError(f"b: got {describe(b)}, expected a NumPy array (np.ndarray) or "
                            "None (no bias)")
        b = float_array("b", b, ndim=1, like=x)
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"w: got {w.shape[1]} input channels (shape {w.shape}), expected {x.shape[1]} "
            f"to match x's channels (x shape {x.shape}); w is (C_out, C_in, kH, kW)"
        )
    if min(w.shape) == 0:
        raise ValueError(f"w: got shape {w.shape}, expected no zero-sized dimension")
    if b is not None:
        same_shape("b", b, (w.shape[0],), "one bias per output channel of w")
    return _window_geometry(x, (w.shape[2], w.shape[3]), stride, padding)


def pool2d(x: object, kernel_size: object, stride: object, padding: object) -> Geometry:
    x = float_array("x", x, ndim=4)
    kernel = int_pair("kernel_size", kernel_size, 1)
    stride = kernel if stride is None else stride
    geometry = _window_geometry(x, kernel, stride, padding)
    for (p0, p1), k in zip(geometry.pads, kernel):
        # PyTorch's rule: a window must never lie wholly in the padding (a max over padding
        # only, or an average over no cell). TensorFlow's SAME padding always satisfies it.
        if max(p0, p1) > k // 2:
            raise ValueError(
                f"padding: got {geometry.pads} for kernel_size {kernel}, expected each pad "
                f"at most half the kernel ({kernel[0] // 2}, {kernel[1] // 2})"
            )
    return geometry


def count_include_pad(value: object) -> bool:
    return boolean("count_include_pad", value)


def linear(x: object, w: object, b: object) -> None:
    x = float_array("x", x)
    if x.ndim < 2:
        raise ValueError(f"x: got {x.ndim} dimensions (shape {x.shape}), expected at least 2 "
                         "(N, ...)")
    w = float_array("w", w, ndim=2, like=x)
    b = float_array("b", b, ndim=1, like=x)
    d = int(np.prod(x.shape[1:]))
    if w.shape[1] != d:
        raise ValueError(
            f"w: got {w.shape[1]} input features (shape {w.shape}), expected {d} to match x "
            f"flattened to (N, D) (x shape {x.shape}); w is (out, in)"
        )
    same_shape("b", b, (w.shape[0],), "one bias per output feature of w")


def elementwise(x: object) -> None:
    float_array("x", x)


def flatten(x: object) -> None:
    x = float_array("x", x)
    if x.ndim < 1:
        raise ValueError("x: got a 0-d array, expected at least 1 dimension (N, ...)")


def _classes(name: str, x: np.ndarray) -> None:
    if x.shape[1] == 0:
        raise ValueError(f"{name}: got shape {x.shape} with no classes, expected at least one "
                         "class (K >= 1)")


def _examples(name: str, x: np.ndarray) -> None:
    if x.shape[0] == 0:
        raise ValueError(f"{name}: got an empty batch of shape {x.shape}, expected at least one "
                         "example (the mean over no examples is undefined)")


def softmax(x: object) -> None:
    x = float_array("x", x, ndim=2)
    _classes("x", x)


def labels_arg(labels: object, logits: np.ndarray) -> str:
    """Check labels against logits (N, K); return "integer" or "probabilities"."""
    n, k = logits.shape
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"labels: got {describe(labels)}, expected a NumPy array of integer "
                        f"classes (N,) or probabilities (N, K)")
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
        if labels.shape[0] != n:
            raise ValueError(f"labels: got {labels.shape[0]} labels, expected {n} (one per row "
                             f"of logits, shape {logits.shape})")
        if n and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"labels: got values in [{labels.min()}, {labels.max()}], expected "
                             f"classes in [0, {k - 1}]")
        return "integer"
    if labels.ndim == 2 and labels.dtype in FLOAT_DTYPES:
        float_array("labels", labels, like=logits, like_name="logits")
        same_shape("labels", labels, logits.shape, "probabilities shaped like logits")
        return "probabilities"
    raise TypeError(f"labels: got {describe(labels)}, expected integer classes of shape (N,) "
                    f"or float probabilities of shape (N, K) with logits' dtype")


def softmax_cross_entropy(logits: object, labels: object) -> str:
    logits = float_array("logits", logits, ndim=2)
    _examples("logits", logits)
    _classes("logits", logits)
    return labels_arg(labels, logits)


def mse(pred: object, target: object) -> None:
    pred = float_array("pred", pred)
    target = float_array("target", target, like=pred, like_name="pred")
    same_shape("target", target, pred.shape, "the shape of pred")
    if pred.size == 0:
        raise ValueError(f"pred: got an empty array of shape {pred.shape}, expected at least one "
                         "element (the mean over no elements is undefined)")


def batchnorm(x: object, gamma: object, beta: object, running_mean: object,
              running_var: object, training: object, momentum: object,
              eps: object) -> tuple[bool, float, float]:
    """Check a batchnorm_forward call; return (training, momentum, eps) as Python values."""
    x = float_array("x", x, ndim=(2, 4))
    c = x.shape[1]
    what = "one per feature of x (N, D)" if x.ndim == 2 else "one per channel of x (N, C, H, W)"
    for name, arr in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                      ("running_var", running_var)):
        float_array(name, arr, ndim=1, like=x)
        same_shape(name, arr, (c,), what)
    training = boolean("training", training)
    if training:
        count = x.shape[0] * (1 if x.ndim == 2 else x.shape[2] * x.shape[3])
        if count < 2:
            values = "value" if count == 1 else "values"
            raise ValueError(f"x: got shape {x.shape} with {count} {values} per channel, "
                             "expected more than 1 when training (the unbiased variance needs "
                             "two)")
    return training, real("momentum", momentum, 0.0, 1.0), real("eps", eps, 0.0, low_open=True)


def dropout(x: object, p: object, training: object, mask: object) -> tuple[float, bool]:
    """Check a dropout_forward call; return (p, training) as Python values."""
    x = float_array("x", x)
    p = real("p", p, 0.0, 1.0, high_open=True)
    training = boolean("training", training)
    if mask is not None:
        if not isinstance(mask, np.ndarray):
            raise TypeError(f"mask: got {describe(mask)}, expected a NumPy array of 0/1 or "
                            "booleans shaped like x (1 keeps a unit)")
        same_shape("mask", mask, x.shape, "the shape of x")
        if mask.dtype != np.bool_ and not np.all((mask == 0) | (mask == 1)):
            raise ValueError("mask: got values other than 0 and 1, expected a 0/1 or boolean "
                             "mask (1 keeps a unit)")
    return p, training


def local_response_norm(x: object, size: object, alpha: object, beta: object,
                        k: object) -> tuple[int, float, float, float]:
    """Check a local_response_norm_forward call; return (size, alpha, beta, k) as Python
    numbers (a NumPy scalar such as np.int64(3) would promote float32 arrays to float64)."""
    float_array("x", x, ndim=4)
    return (integer("size", size, 1), real("alpha", alpha, 0.0), real("beta", beta, 0.0),
            real("k", k, 0.0, low_open=True))


def l2_regularization(weights: object,
                      weight_decay: object) -> tuple[list[np.ndarray], float]:
    """Check an l2_regularization call; return (the arrays, weight_decay as a Python float)."""
    if isinstance(weights, dict):
        items = list(weights.items())
    elif isinstance(weights, (list, tuple)):
        items = [(f"weights[{i}]", w) for i, w in enumerate(weights)]
    else:
        raise TypeError(f"weights: got {describe(weights)}, expected a list, tuple or dict of "
                        "NumPy arrays")
    arrays = [float_array(str(name), w) for name, w in items]
    if arrays and any(a.dtype != arrays[0].dtype for a in arrays):
        raise TypeError(f"weights: got dtypes {sorted({str(a.dtype) for a in arrays})}, "
                        "expected one dtype for all")
    return arrays, real("weight_decay", weight_decay, 0.0)


def grad_output(dy: object, cache: object, op: str) -> None:
    """Check a backward call: ``cache`` from ``<op>_forward``, ``dy`` like its output."""
    if not isinstance(cache, Cache) or cache.op != op:
        got = (f"a cache from {cache.op}_forward" if isinstance(cache, Cache)
               else describe(cache))
        raise TypeError(f"cache: got {got}, expected the cache returned by {op}_forward")
    if not isinstance(dy, np.ndarray):
        raise TypeError(f"dy: got {describe(dy)}, expected a NumPy array")
    if dy.dtype != cache.dtype:
        raise TypeError(f"dy: got dtype {dy.dtype}, expected {cache.dtype} (the forward's dtype)")
    if dy.shape != cache.shape:
        raise ValueError(f"dy: got shape {dy.shape}, expected {cache.shape} (the forward "
                         "output's shape)")


INITIALIZERS = ("he_normal", "xavier_normal", "xavier_uniform", "lecun_normal", "normal(STD)",
                "truncated_normal(STD)")


def initialize(name: object, shape: object, seed: object, dtype: object) -> tuple[int, ...]:
    """Check an initialiser call; return the shape as a tuple of ints."""
    from reference.models import _init_std

    try:
        _init_std(name)
    except ValueError:
        raise ValueError(f"name: got {name!r}, expected one of {', '.join(INITIALIZERS)} "
                         "(STD finite and > 0)") from None
    if (not isinstance(shape, (tuple, list)) or len(shape) < 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0
                       for v in shape)):
        raise ValueError(f"shape: got {describe(shape)}, expected a tuple of at least 2 "
                         "positive integers ((out, in) or (C_out, C_in, kH, kW))")
    integer("seed", seed, 0)
    if str(dtype) not in ("float32", "float64"):
        raise ValueError(f"dtype: got {dtype!r}, expected 'float32' or 'float64'")
    return tuple(int(v) for v in shape)


# Each optimizer's hyperparameters with PyTorch's names and defaults, and below the forms each
# can take: the float reference's tables (reference/optimizers.py), so that the backends and
# the reference cannot disagree on them. Adam also takes ``betas=(beta1, beta2)`` (PyTorch's
# spelling) instead of beta1/beta2.
OPTIMIZER_DEFAULTS: dict[str, dict[str, float]] = _reference_optimizers.DEFAULTS
IMPLEMENTATIONS = ("auto", "textbook", "native")
# The forms each rule can take, "textbook" (docs/models.md's table) first, the default. Adam's
# "eps_hat" (tutorial 002, Keras' Adam, TF1's tf.train.AdamOptimizer): lr_t = lr sqrt(1 - b2^t)
# / (1 - b1^t); w -= lr_t m / (sqrt(v) + eps), eps on the UNcorrected sqrt(v). AdaGrad's and
# RMSProp's "eps_inside" (Keras' Adagrad and RMSprop): w -= lr g / sqrt(h + eps).
OPTIMIZER_FORMS: dict[str, tuple[str, ...]] = _reference_optimizers.FORMS

_UNIT = dict(low=0.0, high=1.0, high_open=True)  # [0, 1)
_POSITIVE = dict(low=0.0, low_open=True)  # (0, inf)
_HYPER_RANGES: dict[str, dict] = {
    "lr": _POSITIVE, "momentum": _UNIT, "alpha": _UNIT, "beta1": _UNIT, "beta2": _UNIT,
    "eps": _POSITIVE, "weight_decay": dict(low=0.0),
}


def learning_rate(lr: object) -> float:
    return real("lr", lr, **_HYPER_RANGES["lr"])


def optimizer(name: object, lr: object, implementation: object,
              hyper: dict[str, object]) -> tuple[float, dict[str, float]]:
    """Check a build_optimizer call; return lr and every hyperparameter (defaults filled in,
    Adam's as beta1/beta2)."""
    if not isinstance(name, str) or name not in OPTIMIZER_DEFAULTS:
        raise ValueError(f"name: got {name!r}, expected one of {', '.join(OPTIMIZER_DEFAULTS)}")
    if not isinstance(implementation, str) or implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation: got {implementation!r}, expected one of "
                         f"{', '.join(map(repr, IMPLEMENTATIONS))}")
    lr = learning_rate(lr)
    hyper = dict(hyper)
    defaults = OPTIMIZER_DEFAULTS[name]
    if "betas" in hyper and name == "adam":
        if "beta1" in hyper or "beta2" in hyper:
            raise TypeError("betas: got betas together with beta1/beta2, expected one spelling")
        betas = hyper.pop("betas")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas: got {betas!r}, expected a pair (beta1, beta2)")
        hyper["beta1"], hyper["beta2"] = (real("betas", b, **_UNIT) for b in betas)
    unknown = sorted(set(hyper) - set(defaults))
    if unknown:
        accepted = sorted(defaults) + (["betas"] if name == "adam" else [])
        raise TypeError(f"hyperparameters: got {unknown} for the {name} optimizer, expected "
                        f"some of {accepted}")
    checked = {key: real(key, hyper.get(key, default), **_HYPER_RANGES[key])
               for key, default in defaults.items()}
    if name == "nesterov" and checked["momentum"] == 0:
        # Nesterov's look-ahead needs a momentum (torch.optim.SGD refuses 0 too)
        raise ValueError("momentum: got 0.0, expected a number in (0, 1) for nesterov")
    return lr, checked


def optimizer_form(name: str, form: object, implementation: str,
                   native_forms: tuple[str, ...]) -> str:
    """Check build_optimizer's ``form`` (after ``optimizer`` checked name and implementation):
    one of OPTIMIZER_FORMS[name]; "native" only where the framework has a class for that form
    (``native_forms``: the forms of ``name`` that the backend's native optimizer computes or is
    configured as, "textbook" included where it is only close, as documented)."""
    forms = OPTIMIZER_FORMS[name]
    if not isinstance(form, str) or form not in forms:
        raise ValueError(f"form: got {form!r}, expected one of {', '.join(map(repr, forms))} "
                         f"for the {name} optimizer")
    if implementation == "native" and form not in native_forms:
        raise ValueError(f"implementation: got 'native' with form {form!r}, expected 'auto' "
                         f"or 'textbook' (this framework has no {name} of that form)")
    return form


def optimizer_params(params: object, model_type: type, what: str) -> dict | None:
    """Check build_optimizer's ``params``: None for a ``model_type`` (the caller takes its
    parameters), else the non-empty dict name -> parameter, as a new dict (each value is the
    backend's to check: ``what`` says what it expects)."""
    if isinstance(params, model_type):
        return None
    if not isinstance(params, dict) or not params:
        got = "an empty dict" if isinstance(params, dict) else describe(params)
        raise TypeError(f"params: got {got}, expected a Model (build_model) or a non-empty "
                        f"dict name -> {what}")
    for key in params:
        if not isinstance(key, str):
            raise TypeError(f"params: got the key {key!r}, expected str keys (the names)")
    return dict(params)


def optimizer_grads(grads: object, params: dict) -> dict:
    """Check a step's ``grads``: a dict with exactly the keys of params."""
    if not isinstance(grads, dict):
        raise TypeError(f"grads: got {describe(grads)}, expected a dict name -> gradient "
                        "with the keys of params")
    missing = [key for key in params if key not in grads]
    if missing:
        raise KeyError(f"grads: no gradient for parameter(s) {missing}")
    unknown = [key for key in grads if key not in params]
    if unknown:
        raise KeyError(f"grads: got {unknown}, which are not parameters of this optimizer "
                       f"(expected the keys of params: {list(params)})")
    return grads


# ---------------------------------------------------------------------------------------------
# model level: the NumPy edge of predict, train_step, gradients and set_weights
# (docs/models.md, "Edges"); every backend calls these, so the messages are the same


def model_input(x: object, input_shape: tuple[int, ...]) -> np.ndarray:
    """Check a batch for a model: a float32/float64 ndarray (N, C, H, W), (C, H, W) the model's.

    Returns x as given; the backend casts it to the model's dtype.
    """
    x = float_array("x", x)
    if x.ndim != 4 or x.shape[1:] != tuple(input_shape):
        raise ValueError(f"x: got shape {x.shape}, expected (N, "
                         f"{', '.join(map(str, input_shape))}) (the model's input_shape)")
    return x


def model_labels(labels: object, n: int, num_classes: int,
                 dtype: np.dtype) -> tuple[str, np.ndarray]:
    """Check the labels of a batch of ``n``: integer classes (N,) in [0, K) or float32/float64
    probabilities (N, K), cast to the model's dtype like x. Returns (kind, labels)."""
    if (isinstance(labels, np.ndarray) and labels.ndim == 2 and labels.dtype in FLOAT_DTYPES):
        labels = labels.astype(dtype, copy=False)
    # labels_arg wants logits: a zero-stride stand-in of shape (N, K) and the model's dtype
    logits = np.broadcast_to(np.zeros((), dtype), (n, num_classes))
    return labels_arg(labels, logits), labels


def training_batch(x: object, labels: object, spec: object,
                   dtype: np.dtype) -> tuple[np.ndarray, str, np.ndarray]:
    """Check a train_step/gradients batch before anything runs, so that a refused batch leaves
    the model unchanged: x as ``model_input``, at least one example, more than one value per
    channel in every batch norm layer of ``spec`` (a reference.models.ModelSpec), the labels
    as ``model_labels``. Returns (x, kind, labels)."""
    x = model_input(x, spec.input_shape)
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"x: got an empty batch of shape {x.shape}, expected at least one "
                         "example (the mean loss over no examples is undefined)")
    for layer in spec.layers:
        if layer.kind in ("BatchNorm1d", "BatchNorm2d"):
            count = n * int(np.prod(layer.in_shape[1:]))
            if count < 2:
                raise ValueError(f"x: got {n} example (shape {x.shape}), expected at least 2 "
                                 f"when training: {layer.name} ({layer.kind}) would see "
                                 f"{count} value per channel (the unbiased variance needs two)")
    kind, labels = model_labels(labels, n, spec.num_classes, dtype)
    return x, kind, labels


def model_weights(weights: object, shapes: dict[str, tuple[int, ...]],
                  dtype: np.dtype) -> dict[str, np.ndarray]:
    """Check a set_weights dict against the model's canonical ``shapes``: exactly its keys,
    real arrays (or nested lists) castable to ``dtype`` ("same_kind": ints, bools, float16,
    float64 yes; complex, str, object no) of the exact shape. Returns them cast to dtype."""
    if not isinstance(weights, dict):
        raise TypeError(f"weights: got {type(weights).__name__}, expected a dict name -> "
                        "array like get_weights()")
    for key in sorted(set(shapes) ^ set(weights)):
        problem = "missing" if key in shapes else "not a weight of this model"
        raise KeyError(f"weights: {key!r} {problem}")
    out = {}
    for key, shape in shapes.items():
        value = np.asarray(weights[key])
        if not np.can_cast(value.dtype, dtype, casting="same_kind"):
            raise TypeError(f"weights[{key!r}]: got dtype {value.dtype}, expected a real array "
                            f"castable to {dtype}")
        same_shape(f"weights[{key!r}]", value, shape, "the model's shape")
        out[key] = value.astype(dtype, copy=False)
    return out
