"""Optimizers over plain dicts, and the optimizer-path known answers (issue 11, items 9-10).

build_optimizer(name, params, ...) takes a Model or a plain dict name -> the backend's parameter
(NumPy: float ndarray, updated in place; torch: a float leaf tensor with requires_grad;
TensorFlow: a tf.Variable / keras.Variable), and ``opt.step(grads)`` steps it the same way in
the three backends (grads: a dict with the keys of params).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from parity_tests.conftest import load_or_skip
from reference import optimizers as R


def _dict_params(name: str, values: dict[str, float], dtype: str = "float64"):
    """The backend's own parameters (0-d, ``dtype``), one per name."""
    if name == "numpy":
        return {k: np.array(v, dtype) for k, v in values.items()}
    if name == "torch":
        import torch
        return {k: torch.tensor(v, dtype=getattr(torch, dtype), requires_grad=True)
                for k, v in values.items()}
    import tensorflow as tf
    return {k: tf.Variable(v, dtype=dtype) for k, v in values.items()}


def _values(name: str, params) -> dict[str, float]:
    if name == "numpy":
        return {k: float(v) for k, v in params.items()}
    if name == "torch":
        return {k: float(v.detach()) for k, v in params.items()}
    return {k: float(v.numpy()) for k, v in params.items()}


def _grads(name: str, values: dict[str, float], dtype: str = "float64"):
    """Gradients as the backend's step(grads) takes them."""
    if name == "numpy":
        return {k: np.array(v, dtype) for k, v in values.items()}
    if name == "torch":
        import torch
        return {k: torch.tensor(v, dtype=getattr(torch, dtype)) for k, v in values.items()}
    import tensorflow as tf
    return {k: tf.constant(v, dtype) for k, v in values.items()}


@pytest.mark.parametrize("name", ["numpy", "torch", "tensorflow"])
def test_a_dict_built_optimizer_steps_with_step_grads(name):
    # one SGD step by hand: w -= lr g, with lr 0.5: 3 - 0.5 * 2 = 2, -1 - 0.5 * (-4) = 1
    backend = load_or_skip(name)
    params = _dict_params(name, {"a": 3.0, "b": -1.0})
    opt = backend.build_optimizer("sgd", params, lr=0.5)
    opt.step(_grads(name, {"a": 2.0, "b": -4.0}))
    assert _values(name, params) == {"a": 2.0, "b": 1.0}
    # momentum keeps state per name: v = 0.9 v - lr g twice with g = 1: -0.5, then -0.95
    params = _dict_params(name, {"a": 0.0})
    opt = backend.build_optimizer("momentum", params, lr=0.5, momentum=0.9)
    opt.step(_grads(name, {"a": 1.0}))
    opt.step(_grads(name, {"a": 1.0}))
    assert _values(name, params)["a"] == pytest.approx(-1.45, abs=1e-15)


BAD_PARAMS = [
    ("not-a-dict", [1.0], TypeError, "params: got [1.0], expected a Model (build_model) or a "
     "non-empty dict name -> "),
    ("empty", {}, TypeError, "params: got an empty dict, expected a Model (build_model) or a "
     "non-empty dict name -> "),
    ("non-str-key", {1: None}, TypeError, "params: got the key 1, expected str keys"),
    ("a-float", {"x": 1.0}, TypeError, "params['x']: got "),
]


@pytest.mark.parametrize("name", ["numpy", "torch", "tensorflow"])
@pytest.mark.parametrize("row", BAD_PARAMS, ids=[row[0] for row in BAD_PARAMS])
def test_bad_params_name_the_argument(name, row):
    backend = load_or_skip(name)
    _, params, exc, fragment = row
    with pytest.raises(exc) as info:
        backend.build_optimizer("sgd", params)
    assert fragment in str(info.value)


@pytest.mark.parametrize("name", ["numpy", "torch", "tensorflow"])
def test_bad_grads_name_the_key(name):
    backend = load_or_skip(name)
    opt = backend.build_optimizer("sgd", _dict_params(name, {"x": 1.0, "y": 2.0}))
    with pytest.raises(KeyError, match=r"grads: no gradient for parameter\(s\) \['y'\]"):
        opt.step(_grads(name, {"x": 1.0}))
    with pytest.raises(KeyError, match=r"grads: got \['z'\], which are not parameters"):
        opt.step(_grads(name, {"x": 1.0, "y": 1.0, "z": 1.0}))
    with pytest.raises(TypeError, match="grads: got 3, expected a dict name -> gradient"):
        opt.step(3)


def test_backend_specific_parameter_checks():
    N = load_or_skip("numpy")
    frozen = np.array([1.0])
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['w'\]: got a read-only array"):
        N.build_optimizer("sgd", {"w": frozen})
    T = load_or_skip("torch")
    import torch
    with pytest.raises(ValueError, match=r"params\['w'\]: got a tensor with is_leaf=True and "
                                         r"requires_grad=False, expected a leaf tensor"):
        T.build_optimizer("sgd", {"w": torch.zeros(2)})
    with pytest.raises(TypeError, match=r"params\['w'\]: got dtype int64"):
        T.build_optimizer("sgd", {"w": torch.zeros(2, dtype=torch.int64)})
    w = torch.zeros(2, requires_grad=True)
    opt = T.build_optimizer("sgd", {"w": w})
    with pytest.raises(ValueError, match=r"grads\['w'\]: got shape \(3,\), expected \(2,\)"):
        opt.step({"w": torch.zeros(3)})
    F = load_or_skip("tensorflow")
    import tensorflow as tf
    with pytest.raises(ValueError, match=r"params\['w'\]: got a variable with trainable=False"):
        F.build_optimizer("sgd", {"w": tf.Variable(1.0, trainable=False)})
    with pytest.raises(TypeError, match=r"params: got dtypes \['float32', 'float64'\]"):
        F.build_optimizer("sgd", {"a": tf.Variable(1.0), "b": tf.Variable(1.0, dtype=tf.float64)})


# ---------------------------------------------------------------------------------------------
# the optimizer paths of tutorial 002 section 6: known answers (reference/optimizer_paths.json)

KNOWN = json.loads((Path(R.__file__).parent / "optimizer_paths.json").read_text())
PATH_TOL = 1e-12  # float64; 30 steps of a contracting (or bounded) iteration near |x| <= 7


def backend_path(backend_name: str, optimizer: str, lr: float, steps: int = R.STEPS,
                 start: tuple[float, float] = R.START, implementation: str = "auto",
                 form: str = "textbook", **hyper) -> list[tuple[float, float]]:
    """The path of ``optimizer`` on f driven by the backend's own optimizer classes over a plain
    dict {"x", "y"} in float64, the gradient from the backend (NumPy: analytic; torch:
    autograd; TensorFlow: GradientTape). Element 0 is the start, as reference.optimizers.path."""
    backend = load_or_skip(backend_name)
    params = _dict_params(backend_name, {"x": start[0], "y": start[1]})
    opt = backend.build_optimizer(optimizer, params, lr=lr, implementation=implementation,
                                  form=form, **hyper)
    points = [tuple(start)]
    for _ in range(steps):
        if backend_name == "numpy":
            gx, gy = R.grad_f(params["x"], params["y"])  # 0-d arrays in, 0-d arrays out
            grads = {"x": np.asarray(gx), "y": np.asarray(gy)}
        elif backend_name == "torch":
            import torch
            f = params["x"] ** 2 / 20.0 + params["y"] ** 2
            grads = dict(zip(params, torch.autograd.grad(f, list(params.values()))))
        else:
            import tensorflow as tf
            with tf.GradientTape() as tape:
                f = params["x"] ** 2 / 20.0 + params["y"] ** 2
            grads = tape.gradient(f, params)
        opt.step(grads)
        values = _values(backend_name, params)
        points.append((values["x"], values["y"]))
    return points


def _settings(name: str) -> tuple[float, dict]:
    settings = dict(R.PATHS[name])
    return settings.pop("lr"), settings


def test_the_known_answers_are_the_experiments_settings():
    assert KNOWN["start"] == list(R.START) and KNOWN["steps"] == R.STEPS
    assert {name: entry["settings"] for name, entry in KNOWN["paths"].items()} == R.PATHS
    # 002's classes: momentum 0.9, AdaGrad 1e-7, Adam eps-hat (0.9, 0.999, 1e-7)
    for name in ("momentum", "adagrad", "adam"):
        tutorial = {k: v for k, v in R.TUTORIAL_OPTIMIZERS["002"][name].items()
                    if k not in ("source", "form")}
        assert tutorial.items() <= R.PATHS[name].items()
    assert R.PATHS["adam"]["form"] == R.TUTORIAL_OPTIMIZERS["002"]["adam"]["form"] == "eps_hat"


@pytest.mark.parametrize("name", list(R.PATHS))
def test_the_reference_path_matches_the_hand_arithmetic(name):
    lr, hyper = _settings(name)
    points = R.path(name, lr, **hyper)
    assert len(points) == R.STEPS + 1 and points[0] == R.START
    for entry in KNOWN["paths"][name]["hand"]:
        x, y = points[entry["step"]]
        assert (x, y) == pytest.approx((entry["x"], entry["y"]), abs=PATH_TOL), entry["how"]


def _path_rows():
    """Each backend's textbook classes, and its native ones where they compute the path's form:
    torch.optim's six but Adam (no eps-hat class), Keras' SGD, momentum, Nesterov and Adam
    (eps-hat). "auto" is one of the two (test_optimizer_forms.py::test_auto_resolves_as_documented
    says which), so it is not run again; NumPy's three implementations are one code."""
    rows = [(backend, name, "textbook") for backend in ("numpy", "torch", "tensorflow")
            for name in R.PATHS]
    rows += [("torch", name, "native") for name in R.PATHS if name != "adam"]
    rows += [("tensorflow", name, "native") for name in ("sgd", "momentum", "nesterov", "adam")]
    return rows


PATH_ROWS = _path_rows()


@pytest.mark.parametrize("backend,name,implementation", PATH_ROWS,
                         ids=["-".join(row) for row in PATH_ROWS])
def test_every_backend_follows_the_reference_path(backend, name, implementation):
    lr, hyper = _settings(name)
    got = backend_path(backend, name, lr, implementation=implementation, **hyper)
    want = R.path(name, lr, **hyper)
    assert np.abs(np.array(got) - np.array(want)).max() <= PATH_TOL
    for entry in KNOWN["paths"][name]["hand"]:
        assert got[entry["step"]] == pytest.approx((entry["x"], entry["y"]), abs=PATH_TOL)


@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow"])
def test_the_textbook_adam_path_differs_from_002s(backend):
    # the same settings in the textbook form: eps 1e-7 on the corrected sqrt(v) is ~30x
    # smaller in effect at t = 1, so the path differs (by ~1e-5 after 30 steps, not 1e-12)
    lr, hyper = _settings("adam")
    hyper["form"] = "textbook"
    got = backend_path(backend, "adam", lr, **hyper)
    want = R.path("adam", lr, **hyper)
    assert np.abs(np.array(got) - np.array(want)).max() <= PATH_TOL
    eps_hat = R.path("adam", lr, **_settings("adam")[1])
    gap = np.abs(np.array(got) - np.array(eps_hat)).max()
    assert 1e-7 < gap < 1e-3, gap


def test_path_arguments_are_checked():
    with pytest.raises(ValueError, match="optimizer: got 'adamw', expected one of sgd"):
        R.path("adamw", 0.1)
    with pytest.raises(ValueError, match="lr: got 0.0, expected a number in"):
        R.path("sgd", 0.0)
    with pytest.raises(ValueError, match="steps: got -1, expected an integer >= 0"):
        R.path("sgd", 0.1, steps=-1)
    with pytest.raises(ValueError, match=r"start: got \(1.0,\), expected a pair"):
        R.path("sgd", 0.1, start=(1.0,))
    with pytest.raises(ValueError, match="form: got 'eps_hat', expected one of 'textbook' "
                                         "for sgd"):
        R.path("sgd", 0.1, form="eps_hat")
    with pytest.raises(TypeError, match=r"hyperparameters: got \['momentum'\] for sgd"):
        R.path("sgd", 0.1, momentum=0.9)
    assert R.path("sgd", 0.1, steps=0) == [R.START]
