"""Optimizers over plain dicts, and the optimizer-path known answers (issue 11, items 9-10).

build_optimizer(name, params, ...) takes a Model or a plain dict name -> the backend's parameter
(NumPy: float ndarray, updated in place; torch: a float leaf tensor with requires_grad;
TensorFlow: a tf.Variable / keras.Variable), and ``opt.step(grads)`` steps it the same way in
the three backends (grads: a dict with the keys of params).
"""

from __future__ import annotations

import numpy as np
import pytest

from parity_tests.conftest import load_or_skip


def _dict_params(name: str, values: dict[str, float]):
    """The backend's own parameters, float64, one per name."""
    if name == "numpy":
        return {k: np.array(v) for k, v in values.items()}
    if name == "torch":
        import torch
        return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
                for k, v in values.items()}
    import tensorflow as tf
    return {k: tf.Variable(v, dtype=tf.float64) for k, v in values.items()}


def _values(name: str, params) -> dict[str, float]:
    if name == "numpy":
        return {k: float(v) for k, v in params.items()}
    if name == "torch":
        return {k: float(v.detach()) for k, v in params.items()}
    return {k: float(v.numpy()) for k, v in params.items()}


def _grads(name: str, values: dict[str, float]):
    """Gradients as the backend's step(grads) takes them."""
    if name == "numpy":
        return {k: np.array(v) for k, v in values.items()}
    if name == "torch":
        import torch
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}
    import tensorflow as tf
    return {k: tf.constant(v, tf.float64) for k, v in values.items()}


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
