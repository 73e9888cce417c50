"""The TensorFlow layers, models, optimizers and training against float64 NumPy written here.

The expected values come from reference/ops.py (slow loops, float64) chained layer by layer
over the same canonical weights, from central differences, and from the update formulas
written in NumPy below (the docs/models.md table, and Keras' own formulas for the documented
native differences); never from the backend under test.

- every model of reference.models.MODELS builds for (1, 8, 8) and (3, 12, 10) in float32 and
  float64 (no silent float32), round-trips its weights bit for bit, predicts the reference;
- the layouts: the first Linear after a Flatten of an image (C > 1, H != W) permutes its rows,
  and a model that did not would fail; dropout masks and a BatchNorm1d between the Flatten and
  the Linear, in a network made up for it;
- gradients() against central differences, the model left unchanged;
- optimizers: the textbook implementation of all six against NumPy (1e-12), sgd/momentum/
  nesterov native the same; one test per native difference of impls/tensorflow/optimizers.py,
  built to fail if the difference were ignored;
- train_step: rng masks = the masks by hand, a new lr inside the compiled step, no retracing.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from parity_tests.conftest import load_or_skip
from parity_tests.tolerances import normalized_error
from reference import models as reference_models
from reference import ops as ref
from reference.models import MODELS, Layer, dropout_masks

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
B = load_or_skip("tensorflow", module_level=True)

# float64 against the loop reference: agreement is ~1e-15 (tolerances.py's float64 entry).
TOL64 = 1e-10
# float32 logits after a few conv/linear reductions (as test_training_parity.py).
TOL32 = 1e-5
# Two float64 implementations of one update rule over 5 steps: only rounding separates them.
TOL_OPT = 1e-12
NUM_CLASSES = 5
BATCH = 3

MODEL_CASES = [(name, {}) for name in MODELS] + [
    ("mlp", dict(batchnorm=True)),
    ("mlp", dict(dropout=0.5)),
    ("mlp", dict(activation="sigmoid")),
    ("mlp", dict(activation="tanh", batchnorm=True, dropout=0.25, hidden=(7, 5))),
    # the tutorial networks' options (reference.models)
    ("three_layer_cnn", dict(batchnorm=True, hidden=7)),
    ("cifar_lrn_cnn", dict(norm2=True)),
    ("cifar_lrn_cnn", dict(flatten_order="nhwc")),
    ("signs_scratch_cnn", dict(flatten_order="nhwc")),
]
MODEL_IDS = [name + "".join(f"-{k}={v}" for k, v in options.items())
             for name, options in MODEL_CASES]
INPUT_SHAPES = [(1, 8, 8), (3, 12, 10)]


def _x(input_shape, seed=0, n=BATCH):
    # Normal values: distinct almost surely (no max-pool ties), rarely near ReLU's kink.
    return np.random.default_rng(seed).standard_normal((n, *input_shape))


def _y(n=BATCH, seed=1):
    return np.random.default_rng(seed).integers(0, NUM_CLASSES, n)


# ---------------------------------------------------------------------------------------------
# the expected values: reference/ops.py chained over the spec (reference.models)

reference_forward = reference_models.forward
reference_loss = reference_models.loss


def _busy(weights, seed=3):
    """Weights with nonzero biases and batch-norm arrays away from their 1/0 start."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, value in weights.items():
        layer, suffix = key.rsplit(".", 1)
        if suffix == "running_var" or (suffix == "weight" and layer.startswith("bn")):
            value = rng.uniform(0.5, 1.5, value.shape)
        elif suffix in ("bias", "running_mean"):
            value = rng.normal(0.0, 0.3, value.shape)
        out[key] = value.astype(weights[key].dtype)
    return out


@functools.cache
def _case(index: int, input_shape: tuple) -> tuple:
    """(float64 busy weights, x, reference logits) for MODEL_CASES[index], computed once."""
    name, options = MODEL_CASES[index]
    model = B.build_model(name, input_shape, NUM_CLASSES, seed=1, dtype="float64",
                          init="he_normal", **options)
    weights = _busy(model.get_weights())
    x = _x(input_shape)
    return weights, x, reference_forward(model.spec, weights, x)[0]


# ---------------------------------------------------------------------------------------------
# building, dtypes, weights, prediction


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("input_shape", INPUT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("index", range(len(MODEL_CASES)), ids=MODEL_IDS)
def test_model_builds_round_trips_and_predicts_like_the_reference(index, input_shape, dtype):
    name, options = MODEL_CASES[index]
    model = B.build_model(name, input_shape, NUM_CLASSES, seed=1, dtype=dtype, **options)
    spec = model.spec
    assert model.dtype == np.dtype(dtype)
    # no silent float32: every variable (weights and running statistics) in the model's dtype
    assert {v.dtype for v in model.variables} == {dtype}
    start = model.get_weights()
    assert {k: v.shape for k, v in start.items()} == spec.weight_shapes()
    expected_start = reference_models.initial_weights(spec, 1, dtype)
    assert all(np.array_equal(start[k], expected_start[k]) for k in start)
    assert all(v.dtype == np.dtype(dtype) for v in start.values())

    weights64, x, expected = _case(index, input_shape)
    weights = {k: v.astype(dtype) for k, v in weights64.items()}
    model.set_weights(weights)
    again = model.get_weights()
    model.set_weights(again)
    for key, value in model.get_weights().items():  # bit for bit, both ways
        assert value.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(value, weights[key], err_msg=key)

    logits = model.predict(x.astype(dtype))
    assert logits.shape == (BATCH, NUM_CLASSES) and logits.dtype == np.dtype(dtype)
    tol = TOL64 if dtype == "float64" else TOL32
    assert normalized_error(logits, expected) < tol
    assert normalized_error(model.predict(x.astype(dtype), batch_size=2), expected) < tol


def test_the_first_linear_after_flatten_stores_its_rows_in_nhwc_order():
    """C > 1 and H != W: the row of the TensorFlow kernel for feature (h, w, c) is the
    canonical column (c, h, w); the index arithmetic is written out here, independently."""
    model = B.build_model("simple_cnn", (3, 12, 10), NUM_CLASSES, dtype="float64")
    c, h, w = model.spec.layers[3].in_shape  # the Flatten's input
    assert c > 1 and h != w, (c, h, w)
    weight = model.get_weights()["fc1.weight"]  # (out, C * H * W)
    kernel = model.params["fc1.weight"].numpy()  # (C * H * W, out)
    for ci in range(c):
        for hi in range(h):
            for wi in range(w):
                np.testing.assert_array_equal(kernel[(hi * w + wi) * c + ci],
                                              weight[:, (ci * h + hi) * w + wi])


def test_a_model_without_the_flatten_permutation_would_fail(monkeypatch):
    from impls.tensorflow import models as tf_models

    index = MODEL_IDS.index("simple_cnn")
    weights, x, expected = _case(index, (3, 12, 10))
    model = B.build_model("simple_cnn", (3, 12, 10), NUM_CLASSES, dtype="float64")
    # the same transpose, no row permutation: still an exact round trip, wrong logits
    monkeypatch.setitem(model._layouts, "fc1.weight", tf_models._Layout(axes=(1, 0)))
    model.set_weights(weights)
    assert all(np.array_equal(v, weights[k]) for k, v in model.get_weights().items())
    assert normalized_error(model.predict(x), expected) > 1e-2


# A network made up to reach every layout rule: a dropout mask on an NHWC activation, and a
# dropout mask and a BatchNorm1d between the Flatten of an image and the first Linear.
def _layouts_net():
    return ([Layer("Conv2d", "conv1", dict(out_channels=4, kernel_size=3, stride=1, padding=1)),
             Layer("ReLU", "relu1"), Layer("Dropout", "drop1", dict(p=0.25)),
             Layer("Flatten", "flatten"), Layer("Dropout", "drop2", dict(p=0.5)),
             Layer("BatchNorm1d", "bn1"), Layer("Linear", "fc1", dict(out_features=None))],
            "he_normal", 0.01)


@pytest.fixture
def layouts_net(monkeypatch):
    monkeypatch.setitem(MODELS, "layouts_net", _layouts_net)
    model = B.build_model("layouts_net", (2, 5, 3), NUM_CLASSES, dtype="float64")
    model.set_weights(_busy(model.get_weights()))
    return model


def test_masks_and_batchnorm1d_follow_the_flatten_permutation(layouts_net):
    model = layouts_net
    x, y, weights = _x((2, 5, 3)), _y(), model.get_weights()
    assert normalized_error(model.predict(x), reference_forward(model.spec, weights, x)[0]) < TOL64

    masks = dropout_masks(model.spec, BATCH, np.random.default_rng(4))
    expected, stats = reference_loss(model.spec, weights, x, y, masks)
    loss, _ = B.gradients(model, x, y, masks=masks)
    assert abs(loss - expected) < TOL64 * abs(expected)
    assert all(np.array_equal(v, weights[k]) for k, v in model.get_weights().items())

    opt = B.build_optimizer("sgd", model, lr=0.1)
    assert B.train_step(model, opt, x, y, rng=np.random.default_rng(4)) == pytest.approx(
        expected, rel=TOL64)
    after = model.get_weights()  # running statistics: momentum 0.1, unbiased var, permuted
    for key, value in stats.items():
        assert normalized_error(after[key], value) < TOL64, key


# ---------------------------------------------------------------------------------------------
# gradients


def _sampled(shape, rng, count=6):
    flat = rng.choice(int(np.prod(shape)), min(count, int(np.prod(shape))), replace=False)
    return [np.unravel_index(i, shape) for i in flat]


@pytest.mark.parametrize("net", ["simple_cnn", "layouts_net"])
def test_gradients_match_central_differences(net, monkeypatch):
    monkeypatch.setitem(MODELS, "layouts_net", _layouts_net)
    # (2, 9, 8): the simple_cnn Flatten sees (30, 2, 2), so the permutation is in play; He init
    # and a weight decay keep every gradient well above central differences' noise
    input_shape = (2, 9, 8) if net == "simple_cnn" else (2, 5, 3)
    model = B.build_model(net, input_shape, NUM_CLASSES, dtype="float64", init="he_normal",
                          weight_decay=0.05)
    model.set_weights(_busy(model.get_weights()))
    x, y = _x(input_shape), _y()
    masks = dropout_masks(model.spec, BATCH, np.random.default_rng(5))
    before = model.get_weights()
    _, grads = B.gradients(model, x, y, masks=masks)
    after = model.get_weights()
    assert all(np.array_equal(after[k], v) for k, v in before.items()), "model changed"
    assert set(grads) == set(model.params)
    assert all(g.dtype == np.float64 and g.shape == before[k].shape for k, g in grads.items())

    rng, eps, errors = np.random.default_rng(0), 1e-6, {}
    for key in grads:
        analytic, numeric = [], []
        for idx in _sampled(before[key].shape, rng):
            probes = []
            for step in (eps, -eps):
                nudged = dict(before)
                nudged[key] = before[key].copy()
                nudged[key][idx] += step
                model.set_weights(nudged)
                probes.append(B.gradients(model, x, y, masks=masks)[0])
            analytic.append(grads[key][idx])
            numeric.append((probes[0] - probes[1]) / (2 * eps))
        errors[key] = (np.array(analytic), np.array(numeric))
    # relative to the array's largest sampled gradient, never below 1e-3 of the model's: a
    # Linear bias right before batch norm has an exactly-zero gradient
    floor = 1e-3 * max(np.max(np.abs(a)) for a, _ in errors.values())
    rel = {k: float(np.max(np.abs(a - n)) / max(np.max(np.abs(a)), np.max(np.abs(n)), floor))
           for k, (a, n) in errors.items()}
    assert max(rel.values()) < 1e-5, rel


# ---------------------------------------------------------------------------------------------
# optimizers: NumPy formulas


def _textbook(name, w, g, state, lr, hp):
    """docs/models.md's table in NumPy (g includes weight_decay * w); returns the new w."""
    g = g + hp.get("weight_decay", 0.0) * w
    if name == "sgd":
        return w - lr * g
    if name in ("momentum", "nesterov"):
        v = state["v"] = hp["momentum"] * state.get("v", 0.0) - lr * g
        return w + v if name == "momentum" else w + hp["momentum"] * v - lr * g
    if name == "adagrad":
        h = state["h"] = state.get("h", 0.0) + g * g
        return w - lr * g / (np.sqrt(h) + hp["eps"])
    if name == "rmsprop":
        h = state["h"] = hp["alpha"] * state.get("h", 0.0) + (1 - hp["alpha"]) * g * g
        return w - lr * g / (np.sqrt(h) + hp["eps"])
    b1, b2 = hp["betas"]
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    v = state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    return w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + hp["eps"])


def _keras_formula(name, w, g, state, lr, hp, initial_accumulator=0.0):
    """Keras 3.15's updates (keras/src/optimizers/{adagrad,rmsprop,adam}.py) in NumPy."""
    if name == "adagrad":
        h = state["h"] = state.get("h", initial_accumulator) + g * g
        return w - lr * g / np.sqrt(h + hp["eps"])
    if name == "rmsprop":
        h = state["h"] = hp["alpha"] * state.get("h", 0.0) + (1 - hp["alpha"]) * g * g
        return w - lr * g / np.sqrt(h + hp["eps"])
    b1, b2 = hp["betas"]
    t = state["t"] = state.get("t", 0) + 1
    m = state["m"] = state.get("m", 0.0) + (g - state.get("m", 0.0)) * (1 - b1)
    v = state["v"] = state.get("v", 0.0) + (g * g - state.get("v", 0.0)) * (1 - b2)
    alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    return w - m * alpha / (np.sqrt(v) + hp["eps"])


HYPER = {"sgd": {}, "momentum": {"momentum": 0.9}, "nesterov": {"momentum": 0.9},
         "adagrad": {"eps": 1e-10}, "rmsprop": {"alpha": 0.99, "eps": 1e-8},
         "adam": {"betas": (0.9, 0.999), "eps": 1e-8}}
SHAPES = {"w": (3, 4), "b": (4,)}


def _start(rng):
    return {k: rng.standard_normal(s) for k, s in SHAPES.items()}


def _run(opt_factory, formula, scale=1.0, steps=5, dtype="float64", new_lr=None, seed=0):
    """(optimizer result, formula result): ``steps`` updates of two variables from the same
    random gradients (times ``scale``); the lr becomes ``new_lr`` after step 2."""
    rng = np.random.default_rng(seed)
    start = _start(rng)
    grads = [{k: scale * rng.standard_normal(s) for k, s in SHAPES.items()}
             for _ in range(steps)]
    params = {k: tf.Variable(v.astype(dtype)) for k, v in start.items()}
    opt = opt_factory(params)
    expected, states = dict(start), {k: {} for k in start}
    lr = opt.lr
    for i, g in enumerate(grads):
        if i == 2 and new_lr is not None:
            opt.lr = lr = new_lr
        opt.step({k: tf.constant(v.astype(dtype)) for k, v in g.items()})
        expected = {k: formula(expected[k], g[k], states[k], lr) for k in expected}
    return {k: v.numpy() for k, v in params.items()}, expected


def _error(got, expected):
    return max(normalized_error(got[k], expected[k]) for k in expected)


def _step_error(got, expected, seed=0):
    """The largest difference between the total updates, relative to the expected one."""
    start = _start(np.random.default_rng(seed))
    return max(normalized_error(got[k] - start[k], expected[k] - start[k]) for k in expected)


def _factory(name, implementation, lr=0.01, **hyper):
    return lambda params: B.Optimizer(name, params, lr=lr, implementation=implementation,
                                      **hyper)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("name", list(HYPER))
def test_textbook_optimizer_is_the_table(name, weight_decay):
    hp = dict(HYPER[name], weight_decay=weight_decay)
    got, expected = _run(_factory(name, "textbook", **hp),
                         functools.partial(_textbook, name, hp=hp), new_lr=0.004)
    assert _error(got, expected) < TOL_OPT


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov"])
def test_native_sgd_momentum_nesterov_are_the_table_even_after_an_lr_change(name,
                                                                            weight_decay):
    # momentum 0.9 is not float32-exact: this also checks the np.float64 hyperparameters
    # (Keras' ops.cast would round a Python float through float32, see the next test)
    hp = dict(HYPER[name], weight_decay=weight_decay)
    opt_factory = _factory(name, "auto", **hp)
    got, expected = _run(opt_factory, functools.partial(_textbook, name, hp=hp), new_lr=0.004)
    assert opt_factory({"w": tf.Variable(np.zeros(1))}).implementation == "native"
    assert _error(got, expected) < TOL_OPT


@pytest.mark.parametrize("name", list(HYPER))
@pytest.mark.parametrize("implementation", ["native", "textbook"])
def test_optimizers_work_in_float32(name, implementation):
    hp = HYPER[name]
    formula = _textbook if implementation == "textbook" or name in (
        "sgd", "momentum", "nesterov") else _keras_formula
    got, expected = _run(_factory(name, implementation, **hp),
                         functools.partial(formula, name, hp=hp), dtype="float32")
    assert all(v.dtype == np.float32 for v in got.values())
    assert _error(got, expected) < 1e-5


# --- the native differences, one test each ---------------------------------------------------


@pytest.mark.parametrize("name", ["adagrad", "rmsprop"])
def test_native_adagrad_and_rmsprop_put_eps_inside_the_square_root(name):
    # gradients ~1e-6: g^2 (1e-12) is far below eps (1e-10, 1e-8), so sqrt(h + eps) ~ sqrt(eps)
    hp = HYPER[name]
    native, keras_expected = _run(_factory(name, "native", **hp),
                                  functools.partial(_keras_formula, name, hp=hp), scale=1e-6)
    textbook, _ = _run(_factory(name, "textbook", **hp),
                       functools.partial(_textbook, name, hp=hp), scale=1e-6)
    assert _error(native, keras_expected) < TOL_OPT
    assert _step_error(native, textbook) > 0.5
    assert B.Optimizer(name, {"w": tf.Variable(np.zeros(1))}).implementation == "textbook"


def test_native_adam_adds_an_uncorrected_epsilon():
    # gradients ~1e-8 ~ eps: Keras' eps is eps / sqrt(1 - b2^t) in the textbook's terms
    hp = HYPER["adam"]
    native, keras_expected = _run(_factory("adam", "native", **hp),
                                  functools.partial(_keras_formula, "adam", hp=hp), scale=1e-8)
    textbook, _ = _run(_factory("adam", "textbook", **hp),
                       functools.partial(_textbook, "adam", hp=hp), scale=1e-8)
    # 1e-12 also needs exact float64 betas in the bias corrections (Keras' ops.cast of a
    # Python float would make them float32, ~1e-6 off)
    assert _error(native, keras_expected) < TOL_OPT
    assert _step_error(native, textbook) > 0.5
    assert B.Optimizer("adam", {"w": tf.Variable(np.zeros(1))}).implementation == "textbook"


def test_keras_adagrad_starts_its_accumulator_at_0_1_native_starts_at_0():
    assert keras.optimizers.Adagrad().initial_accumulator_value == 0.1
    hp = HYPER["adagrad"]
    # unit gradients: with h starting at 0, eps inside or outside the root is a 1e-10 effect
    ours, textbook = _run(_factory("adagrad", "native", **hp),
                          functools.partial(_textbook, "adagrad", hp=hp))
    assert _error(ours, textbook) < 1e-9

    def keras_default(params):  # Keras' defaults but for eps: initial_accumulator_value 0.1
        return _KerasOnly(keras.optimizers.Adagrad(KERAS_LR, epsilon=hp["eps"]), params)

    default, textbook_too = _run(keras_default, functools.partial(_textbook, "adagrad", hp=hp))
    # Keras' Constant initializer casts 0.1 to float64 through float32, as ops.cast does
    _, keras_expected = _run(keras_default, functools.partial(
        _keras_formula, "adagrad", hp=hp, initial_accumulator=float(np.float32(0.1))))
    assert _error(default, keras_expected) < TOL_OPT
    assert _step_error(default, textbook_too) > 1e-2


# Keras' own learning-rate variable is float32: a float32-exact lr for bare Keras optimizers
KERAS_LR = 2.0**-7


class _KerasOnly:
    """A bare Keras optimizer behind Optimizer's step/lr, to test Keras' own behaviour."""

    def __init__(self, keras_optimizer, params):
        self.keras_optimizer, self.params, self.lr = keras_optimizer, params, KERAS_LR

    def step(self, grads):
        self.keras_optimizer.apply_gradients([(grads[k], v) for k, v in self.params.items()])


def test_keras_casts_python_float_hyperparameters_through_float32():
    """Why the float64 models hand Keras np.float64 hyperparameters: SGD(momentum=0.9) with a
    Python float computes with momentum float32(0.9) = 0.8999999761581421 on float64 weights."""
    hp = HYPER["momentum"]

    def python_float(params):
        return _KerasOnly(keras.optimizers.SGD(KERAS_LR, momentum=0.9), params)

    got, exact = _run(python_float, functools.partial(_textbook, "momentum", hp=hp))
    rounded_hp = {"momentum": float(np.float32(0.9))}
    _, rounded = _run(python_float, functools.partial(_textbook, "momentum", hp=rounded_hp))
    assert _error(got, rounded) < TOL_OPT
    assert _error(got, exact) > 1e-9


def test_keras_weight_decay_is_decoupled_ours_is_coupled():
    hp = dict(HYPER["momentum"], weight_decay=0.1)
    ours, coupled = _run(_factory("momentum", "native", **hp),
                         functools.partial(_textbook, "momentum", hp=hp))
    assert _error(ours, coupled) < TOL_OPT

    def keras_wd(params):
        return _KerasOnly(keras.optimizers.SGD(KERAS_LR, momentum=np.float64(0.9),
                                               weight_decay=np.float64(0.1)), params)

    def decoupled(w, g, state, lr):  # base_optimizer._apply_weight_decay, then the update
        w = w - w * 0.1 * lr
        return _textbook("momentum", w, g, state, lr, HYPER["momentum"])

    keras_got, keras_expected = _run(keras_wd, decoupled)
    assert _error(keras_got, keras_expected) < TOL_OPT
    assert _error(keras_got, coupled) > 1e-6


# ---------------------------------------------------------------------------------------------
# the training step


def test_train_step_with_rng_is_gradients_with_the_masks_drawn_by_hand():
    # no batch norm: the Linear biases before it have zero gradients up to rounding noise,
    # which differs between the compiled and the eager graph (layouts_net has batch norm)
    model = B.build_model("mlp", (3, 6, 4), NUM_CLASSES, dtype="float64", dropout=0.5)
    twin = B.build_model("mlp", (3, 6, 4), NUM_CLASSES, dtype="float64", dropout=0.5)
    x, y, lr = _x((3, 6, 4)), _y(), 0.1
    masks = dropout_masks(model.spec, BATCH, np.random.default_rng(7))
    expected_loss, grads = B.gradients(twin, x, y, masks=masks)
    reference, _ = reference_loss(model.spec, model.get_weights(), x, y, masks)
    assert expected_loss == pytest.approx(reference, rel=TOL64)
    opt = B.build_optimizer("sgd", model, lr=lr)
    loss = B.train_step(model, opt, x, y, rng=np.random.default_rng(7))
    assert loss == pytest.approx(expected_loss, rel=1e-14)
    got, start = model.get_weights(), twin.get_weights()
    for key, g in grads.items():
        assert normalized_error(got[key] - start[key], -lr * g) < 1e-12, key
    # without rng, TensorFlow's own dropout: another mask, another loss
    other = B.train_step(model, opt, x, y)
    assert np.isfinite(other) and other != loss


def test_a_new_lr_takes_effect_inside_the_compiled_step_without_retracing():
    model = B.build_model("simple_cnn", (2, 9, 8), NUM_CLASSES, dtype="float64",
                          init="he_normal")
    opt = B.build_optimizer("sgd", model, lr=0.1)
    x, y = _x((2, 9, 8)), _y()
    for lr in (0.1, 0.003, 0.5):
        opt.lr = lr
        before = model.get_weights()
        _, grads = B.gradients(model, x, y)
        B.train_step(model, opt, x, y)
        after = model.get_weights()
        for key, g in grads.items():
            assert normalized_error(after[key] - before[key], -lr * g) < 1e-10, (lr, key)
    B.train_step(model, opt, x[:2], y[:2])  # another batch size: reduce_retracing's shape
    assert opt.compiled_step.experimental_get_tracing_count() <= 2


def test_gradients_keep_running_statistics_train_step_updates_them():
    model = B.build_model("mlp", (1, 4, 4), NUM_CLASSES, dtype="float32", batchnorm=True)
    x, y = _x((1, 4, 4)).astype(np.float32), _y()
    before = model.get_weights()
    _, grads = B.gradients(model, x, y)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(np.array_equal(v, before[k]) for k, v in model.get_weights().items())
    B.train_step(model, B.build_optimizer("adam", model), x, y)
    assert not np.array_equal(model.get_weights()["bn1.running_var"], before["bn1.running_var"])


# ---------------------------------------------------------------------------------------------
# argument checks


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="dtype"):
        B.build_model("simple_cnn", (1, 8, 8), 3, dtype="int32")
    with pytest.raises(ValueError, match="seed"):
        B.build_model("simple_cnn", (1, 8, 8), 3, seed=-1)
    with pytest.raises(ValueError, match="name"):
        B.build_model("resnet", (1, 8, 8), 3)
    model = B.build_model("simple_cnn", (1, 8, 8), 3)
    weights = model.get_weights()
    with pytest.raises(KeyError, match="fc2.bias"):
        model.set_weights({k: v for k, v in weights.items() if k != "fc2.bias"})
    with pytest.raises(KeyError, match="fc9.bias"):
        model.set_weights({**weights, "fc9.bias": weights["fc2.bias"]})
    with pytest.raises(ValueError, match="conv1.weight"):
        model.set_weights({**weights, "conv1.weight": weights["conv1.weight"][:, :, :2]})
    with pytest.raises(TypeError, match="momentum"):
        B.build_optimizer("adam", model, momentum=0.9)
    with pytest.raises(ValueError, match="eps"):
        B.build_optimizer("adam", model, eps=-1.0)
    with pytest.raises(ValueError, match="implementation"):
        B.build_optimizer("adam", model, implementation="fast")
    with pytest.raises(ValueError, match="lr"):
        B.build_optimizer("sgd", model).lr = -0.1
    x, y = _x((1, 8, 8)).astype(np.float32), _y(seed=2) % 3
    other = B.build_model("simple_cnn", (1, 8, 8), 3)
    with pytest.raises(ValueError, match="opt"):
        B.train_step(model, B.build_optimizer("sgd", other), x, y)
    with pytest.raises(ValueError, match="x"):
        B.train_step(model, B.build_optimizer("sgd", model), x[:, :, :4], y)
    with pytest.raises(KeyError, match="masks"):
        B.gradients(model, x, y, masks={"dropout1": np.ones((3, 100))})


def test_bias_free_conv2d_layer_has_no_bias_variable():
    """Conv2d(bias=False): no bias variable at all (Keras' use_bias=False), the reference conv
    with b=None on NHWC tensors."""
    layer = B.Conv2d(2, 3, 3, stride=2, padding="same", bias=False, dtype="float64")
    layer.build((None, 7, 6, 2))
    assert layer.bias is None and [v.name for v in layer.trainable_variables] == ["kernel"]
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6))
    y = layer(tf.constant(x.transpose(0, 2, 3, 1))).numpy().transpose(0, 3, 1, 2)
    w = layer.kernel.numpy().transpose(3, 2, 0, 1)  # (kH, kW, C_in, C_out) -> canonical
    expected, _ = ref.conv2d_forward(x, w, None, 2, "same")
    assert normalized_error(y, expected) <= TOL64


def test_flatten_order_is_checked_and_the_nhwc_model_permutes_nothing():
    with pytest.raises(ValueError, match="order: got 'hwc'"):
        B.Flatten(order="hwc")
    model = B.build_model("signs_scratch_cnn", (3, 9, 7), 5, dtype="float64",
                          flatten_order="nhwc")
    weights = model.get_weights()
    kernel = model.params["fc1.weight"].numpy()  # (in, out), rows in the layer's (h, w, c)
    np.testing.assert_array_equal(kernel, weights["fc1.weight"].T)
