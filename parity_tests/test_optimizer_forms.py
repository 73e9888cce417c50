"""The optimizers' forms (issue 11 item 9): Adam's textbook and "eps_hat" forms, 002's AdaGrad
and RMSProp, Keras' "eps_inside" AdaGrad and RMSProp, in every backend and implementation,
against hand-computed steps and against reference/optimizers.py (Python floats), in float64.

Adam's eps-hat form (tutorial 002, Keras' Adam, TF1's tf.train.AdamOptimizer of 003/004):
lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); w -= lr_t m / (sqrt(v) + eps): eps is added to the
UNcorrected sqrt(v). With a constant gradient g equal to eps both forms have closed forms that
can be checked by hand: m_hat = g and v_hat = g^2 at every t, so

    textbook  step = lr g / (|g| + eps) = lr / 2
    eps_hat   step = lr s g / (s |g| + eps) = lr s / (s + 1),  s = sqrt(1 - b2^t)

(at t = 1, b2 = 0.999: s = sqrt(0.001) = 0.0316..., a step 16x smaller than the textbook's).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from impls import _checks
from parity_tests.conftest import load_or_skip
from parity_tests.test_optimizer_paths import _dict_params, _grads, _values
from reference import optimizers as R

BACKENDS = ["numpy", "torch", "tensorflow"]
TOL = 1e-12  # float64: every step is a handful of roundings of numbers near 1


def _combinations():
    """(backend, optimizer, form, implementation) that compute the form as written: every
    backend's textbook and auto; native where the framework's class IS that form."""
    native = {"numpy": set(_checks.OPTIMIZER_DEFAULTS),  # NumPy's native is its textbook
              "torch": set(_checks.OPTIMIZER_DEFAULTS),  # torch.optim: the textbook forms
              "tensorflow": {"sgd", "momentum", "nesterov"}}  # Keras: those, and eps-hat Adam
    rows = []
    for backend in BACKENDS:
        for name, forms in _checks.OPTIMIZER_FORMS.items():
            for form in forms:
                implementations = ["textbook", "auto"]
                if form == "textbook" and name in native[backend]:
                    implementations.append("native")
                if form != "textbook" and backend in ("numpy", "tensorflow"):
                    implementations.append("native")
                rows += [(backend, name, form, impl) for impl in implementations]
    return rows


COMBINATIONS = _combinations()


def test_the_reference_has_the_backends_defaults_and_forms():
    assert R.DEFAULTS == _checks.OPTIMIZER_DEFAULTS
    assert R.FORMS == _checks.OPTIMIZER_FORMS


def _run(backend_name, name, form, implementation, start, grads, lr, **hyper):
    backend = load_or_skip(backend_name)
    params = _dict_params(backend_name, start)
    opt = backend.build_optimizer(name, params, lr=lr, implementation=implementation,
                                  form=form, **hyper)
    values = []
    for g in grads:
        opt.step(_grads(backend_name, g))
        values.append(_values(backend_name, params))
    return opt, values


# ---------------------------------------------------------------------------------------------
# hand-computed steps


@pytest.mark.parametrize("backend,form,implementation",
                         [(b, f, i) for b, n, f, i in COMBINATIONS if n == "adam"])
def test_adam_forms_by_hand(backend, form, implementation):
    # constant g = eps = 1e-8 from w = 1 with lr 0.1 (the module docstring's closed forms)
    lr, g = 0.1, 1e-8
    _, values = _run(backend, "adam", form, implementation, {"w": 1.0}, [{"w": g}] * 3, lr,
                     eps=1e-8)
    if form == "textbook":
        expected = [1 - 0.05, 1 - 0.10, 1 - 0.15]  # lr / 2 each step
    else:
        s = [math.sqrt(1 - 0.999**t) for t in (1, 2, 3)]  # 0.0316, 0.0447, 0.0548
        expected = list(np.cumsum([-lr * st / (st + 1) for st in s]) + 1)
        # 1 - 0.1 * 0.0316228 / 1.0316228 = 0.99693466, a step 16x smaller than lr / 2
        assert expected[0] == pytest.approx(0.9969346569968285, abs=1e-15)
    assert [v["w"] for v in values] == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_adam_forms_differ_where_they_should(backend):
    # one step with g = eps: textbook 1 - lr/2 = 0.95, eps-hat 0.99693...: if eps_hat were the
    # textbook form (or the reverse) this fails by 0.047
    _, (textbook,) = _run(backend, "adam", "textbook", "textbook", {"w": 1.0}, [{"w": 1e-8}],
                          0.1, eps=1e-8)
    _, (eps_hat,) = _run(backend, "adam", "eps_hat", "textbook", {"w": 1.0}, [{"w": 1e-8}],
                         0.1, eps=1e-8)
    assert textbook["w"] == pytest.approx(0.95, abs=TOL)
    assert eps_hat["w"] - textbook["w"] == pytest.approx(0.0469346569968285, abs=TOL)
    # and with a large gradient the two agree to ~eps / |g|: the forms differ only near eps
    _, (a,) = _run(backend, "adam", "textbook", "textbook", {"w": 1.0}, [{"w": 1.0}], 0.1)
    _, (b,) = _run(backend, "adam", "eps_hat", "textbook", {"w": 1.0}, [{"w": 1.0}], 0.1)
    assert a["w"] == pytest.approx(0.9, abs=1e-7) and b["w"] == pytest.approx(0.9, abs=1e-7)
    assert a["w"] != b["w"]


@pytest.mark.parametrize("backend,implementation",
                         [(b, i) for b, n, f, i in COMBINATIONS
                          if n == "adagrad" and f == "textbook"])
def test_002_adagrad_adds_its_eps_outside_the_root(backend, implementation):
    # 002: w -= lr g / (sqrt(h) + 1e-7). g = 1e-7 from w = 1, lr 0.1: h = 1e-14, sqrt(h) = 1e-7,
    # step 0.1 * 1e-7 / 2e-7 = 0.05. Inside the root (Keras' Adagrad) it would be
    # 0.1 * 1e-7 / sqrt(1e-14 + 1e-7) = 3.2e-5.
    _, values = _run(backend, "adagrad", "textbook", implementation, {"w": 1.0},
                     [{"w": 1e-7}], 0.1, eps=1e-7)
    assert values[0]["w"] == pytest.approx(0.95, abs=TOL)


@pytest.mark.parametrize("backend,implementation",
                         [(b, i) for b, n, f, i in COMBINATIONS
                          if n == "rmsprop" and f == "textbook"])
def test_002_rmsprop_by_hand(backend, implementation):
    # the book's RMSprop (decay 0.99, 1e-7 outside the root): g = 1 from w = 1, lr 0.01:
    # h = 0.01, step 0.01 * 1 / (0.1 + 1e-7) = 0.0999999000001 ; then h = 0.0199, step
    # 0.01 / (sqrt(0.0199) + 1e-7) = 0.0708881...
    _, values = _run(backend, "rmsprop", "textbook", implementation, {"w": 1.0},
                     [{"w": 1.0}, {"w": 1.0}], 0.01, alpha=0.99, eps=1e-7)
    first = 1 - 0.01 / (0.1 + 1e-7)
    second = first - 0.01 / (math.sqrt(0.0199) + 1e-7)
    assert first == pytest.approx(0.9000000999999, abs=1e-13)
    assert [v["w"] for v in values] == pytest.approx([first, second], abs=TOL)


# ---------------------------------------------------------------------------------------------
# every rule and form against the reference, a few steps


GRADS = [{"a": 0.3, "b": -2e-6, "c": 4.0}, {"a": -0.2, "b": 3e-6, "c": -1.0},
         {"a": 0.5, "b": 1e-7, "c": 0.0}, {"a": 1e-9, "b": -5e-6, "c": 2.5}]
START = {"a": 1.0, "b": -2.0, "c": 0.25}
HYPER = {"sgd": {}, "momentum": {"momentum": 0.8}, "nesterov": {"momentum": 0.7},
         "adagrad": {"eps": 1e-7}, "rmsprop": {"alpha": 0.9, "eps": 1e-7},
         "adam": {"betas": (0.8, 0.99), "eps": 1e-7}}


def _reference(name, form, lr, weight_decay, **hyper):
    if "betas" in hyper:
        hyper["beta1"], hyper["beta2"] = hyper.pop("betas")
    params, state, values = dict(START), {}, []
    for g in GRADS:
        params = R.update(name, params, g, state, lr, form, weight_decay=weight_decay, **hyper)
        values.append(params)
    return values


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("backend,name,form,implementation", COMBINATIONS,
                         ids=["-".join(row) for row in COMBINATIONS])
def test_every_form_matches_the_reference(backend, name, form, implementation, weight_decay):
    opt, values = _run(backend, name, form, implementation, START, GRADS, 0.05,
                       weight_decay=weight_decay, **HYPER[name])
    assert opt.form == form
    expected = _reference(name, form, 0.05, weight_decay, **HYPER[name])
    for step, (got, want) in enumerate(zip(values, expected), 1):
        for key in START:
            assert got[key] == pytest.approx(want[key], abs=TOL), (step, key)


@pytest.mark.parametrize("backend,name,form,implementation",
                         [row for row in COMBINATIONS if row[1] in ("adam", "rmsprop")],
                         ids=["-".join(row) for row in COMBINATIONS
                              if row[1] in ("adam", "rmsprop")])
def test_float32_stays_float32_and_close(backend, name, form, implementation):
    # float32 parameters are updated in float32 (no silent float64) and stay within float32
    # rounding of the float64 reference: each step is a few roundings of numbers <= 4 in size,
    # so 1e-6 after four steps (measured worst: a few 1e-7)
    B = load_or_skip(backend)
    params = _dict_params(backend, START, "float32")
    opt = B.build_optimizer(name, params, lr=0.05, implementation=implementation, form=form,
                            **HYPER[name])
    for g in GRADS:
        opt.step(_grads(backend, g, "float32"))
    expected = _reference(name, form, 0.05, 0.0, **HYPER[name])[-1]
    for key, w in params.items():
        dtype = str(w.dtype).removeprefix("torch.") if backend == "torch" else w.dtype.name
        assert dtype == "float32", (key, w.dtype)
        assert _values(backend, {key: w})[key] == pytest.approx(expected[key], abs=1e-6), key


# Keras' classes that are NOT the textbook form they stand in for (implementation="native"
# with form "textbook" gives them, as documented): data, each with the size of the gap on the
# first step of g = 1e-6 from w = 1, lr 0.1, eps 1e-8 (so eps is not negligible next to g).
KERAS_NOT_TEXTBOOK = [  # (name, Keras' form, why, Keras' value by hand)
    ("adagrad", "eps_inside", "eps inside the root: sqrt(h + eps), 0.1 / sqrt(1e-12 + 1e-8) "
     "* 1e-6 vs 0.1 * 1e-6 / (1e-6 + 1e-8)", 1 - 0.1 * 1e-6 / math.sqrt(1e-12 + 1e-8)),
    ("rmsprop", "eps_inside", "eps inside the root: h = 0.01 g^2 = 1e-14, step 0.1 g / "
     "sqrt(h + eps)", 1 - 0.1 * 1e-6 / math.sqrt(1e-14 + 1e-8)),
    ("adam", "eps_hat", "eps hat: eps on the uncorrected sqrt(v)",
     1 - 0.1 * math.sqrt(0.001) * 1e-6 / (math.sqrt(0.001) * 1e-6 + 1e-8)),
]


@pytest.mark.parametrize("name,form,why,keras_value", KERAS_NOT_TEXTBOOK,
                         ids=[row[0] for row in KERAS_NOT_TEXTBOOK])
def test_keras_native_is_its_own_form_not_the_textbook(name, form, why, keras_value):
    hyper = {"eps": 1e-8} | ({"alpha": 0.99} if name == "rmsprop" else {})
    _, (native,) = _run("tensorflow", name, "textbook", "native", {"w": 1.0}, [{"w": 1e-6}],
                        0.1, **hyper)
    (textbook,) = [v["w"] for v in _reference_one(name, hyper)]
    assert native["w"] == pytest.approx(keras_value, abs=1e-9), why
    assert abs(native["w"] - textbook) > 1e-3, why


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,form,why,keras_value", KERAS_NOT_TEXTBOOK,
                         ids=[row[0] for row in KERAS_NOT_TEXTBOOK])
def test_keras_forms_by_hand_in_every_backend(backend, name, form, why, keras_value):
    # the same step in each backend's textbook code with Keras' form asked for
    hyper = {"eps": 1e-8} | ({"alpha": 0.99} if name == "rmsprop" else {})
    _, (value,) = _run(backend, name, form, "textbook", {"w": 1.0}, [{"w": 1e-6}], 0.1, **hyper)
    assert value["w"] == pytest.approx(keras_value, abs=TOL), why


def _reference_one(name, hyper):
    state = {}
    return [R.update(name, {"w": 1.0}, {"w": 1e-6}, state, 0.1, "textbook", **hyper)]


def test_tf1_adam_of_003_and_004_is_the_eps_hat_form():
    # tf.compat.v1.train.AdamOptimizer, the tutorials' own class: eps-hat, exactly, when its
    # hyperparameters are float64 tensors. Given Python floats (as 003/004 write them) it
    # rounds lr, betas and eps through float32 even for float64 variables: 2e-8 off at step 1.
    tf = pytest.importorskip("tensorflow")
    grads = [1e-8, 1e-8, -3e-8, 0.5, 2.0]
    expected, state, w_ref = [], {}, {"w": 1.0}
    for g in grads:
        w_ref = R.update("adam", w_ref, {"w": g}, state, 0.1, "eps_hat")
        expected.append(w_ref["w"])

    def run(**hyper):
        w = tf.Variable(1.0, dtype=tf.float64)
        opt = tf.compat.v1.train.AdamOptimizer(**hyper)
        out = []
        for g in grads:
            opt.apply_gradients([(tf.constant(g, tf.float64), w)])
            out.append(float(w.numpy()))
        return out

    f64 = lambda v: tf.constant(v, tf.float64)  # noqa: E731
    exact = run(learning_rate=f64(0.1), beta1=f64(0.9), beta2=f64(0.999), epsilon=f64(1e-8))
    assert exact == pytest.approx(expected, abs=TOL)
    floats = run(learning_rate=0.1)
    assert abs(floats[0] - expected[0]) == pytest.approx(1.9064e-8, rel=1e-3)


# ---------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_forms_are_refused_by_name(backend):
    B = load_or_skip(backend)
    params = _dict_params(backend, {"w": 1.0})
    with pytest.raises(ValueError, match="form: got 'eps_hat', expected one of 'textbook' "
                                         "for the sgd optimizer"):
        B.build_optimizer("sgd", params, form="eps_hat")
    with pytest.raises(ValueError, match="form: got 'keras', expected one of 'textbook', "
                                         "'eps_hat' for the adam optimizer"):
        B.build_optimizer("adam", params, form="keras")


def test_torch_has_no_native_eps_hat_adam_nor_eps_inside():
    T = load_or_skip("torch")
    params = _dict_params("torch", {"w": 1.0})
    with pytest.raises(ValueError, match="implementation: got 'native' with form 'eps_hat', "
                                         "expected 'auto' or 'textbook'"):
        T.build_optimizer("adam", params, implementation="native", form="eps_hat")
    assert T.build_optimizer("adam", params, form="eps_hat").implementation == "textbook"
    with pytest.raises(ValueError, match="implementation: got 'native' with form 'eps_inside'"):
        T.build_optimizer("rmsprop", params, implementation="native", form="eps_inside")
    F = load_or_skip("tensorflow")
    variables = _dict_params("tensorflow", {"w": 1.0})
    assert F.build_optimizer("adam", variables, form="eps_hat").implementation == "native"
    assert F.build_optimizer("adam", variables).implementation == "textbook"


AUTO = {  # what implementation="auto" runs, per backend, optimizer and form
    "torch": {(name, "textbook"): "native" for name in _checks.OPTIMIZER_DEFAULTS}
    | {("adam", "eps_hat"): "textbook", ("adagrad", "eps_inside"): "textbook",
       ("rmsprop", "eps_inside"): "textbook"},
    "tensorflow": {("sgd", "textbook"): "native", ("momentum", "textbook"): "native",
                   ("nesterov", "textbook"): "native", ("adagrad", "textbook"): "textbook",
                   ("rmsprop", "textbook"): "textbook", ("adam", "textbook"): "textbook",
                   ("adam", "eps_hat"): "native", ("adagrad", "eps_inside"): "native",
                   ("rmsprop", "eps_inside"): "native"},
}


@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow"])
def test_auto_resolves_as_documented(backend):
    B = load_or_skip(backend)
    for name, forms in _checks.OPTIMIZER_FORMS.items():
        for form in forms:
            opt = B.build_optimizer(name, _dict_params(backend, {"w": 1.0}), form=form)
            want = "textbook" if backend == "numpy" else AUTO[backend][name, form]
            assert opt.implementation == want, (name, form)


def test_the_tutorials_forms_are_expressible():
    # every tutorial optimizer of reference/optimizers.py builds in every backend
    for backend in BACKENDS:
        B = load_or_skip(backend)
        for tutorial, optimizers in R.TUTORIAL_OPTIMIZERS.items():
            for name, settings in optimizers.items():
                hyper = {k: v for k, v in settings.items() if k != "source"}
                opt = B.build_optimizer(name, _dict_params(backend, {"w": 1.0}), **hyper)
                assert opt.form == settings["form"], (backend, tutorial, name)
