"""The NumPy backend's layers, models, optimizers and training step (docs/models.md).

- every model of reference.models.MODELS builds, round-trips its weights and predicts what a
  float64 forward written here with reference/ops.py predicts on the same weights (1e-10);
- gradients() of every model against central differences (float64, a random sample of
  elements of every weight array);
- the loss: ln(K) at the tutorials' small initialisation, the L2 term exactly
  0.5 * wd * sum(w^2);
- each optimizer's first steps against the textbook formulas written out again below in plain
  Python floats, with and without weight decay, and with the learning rate changed mid-way;
- argument validation of build_model, set_weights and build_optimizer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import impls
from parity_tests.tolerances import normalized_error, tolerance
from reference import models as reference_models
from reference import ops as reference_ops

B = impls.load("numpy")

# (model name, options): every model, the MLP also with each of its options.
MODEL_CASES = [(name, {}) for name in reference_models.MODELS] + [
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
NUM_CLASSES = 5
BATCH = 3


def _x(input_shape, seed=0, n=BATCH):
    # Normal values: distinct almost surely (no max-pool ties), rarely near ReLU's kink.
    return np.random.default_rng(seed).standard_normal((n, *input_shape))


def _y(n=BATCH, k=NUM_CLASSES, seed=1):
    return np.random.default_rng(seed).integers(0, k, n)


def _masks(model, seed=2):
    return reference_models.dropout_masks(model.spec, BATCH, np.random.default_rng(seed))


def _with_busy_batchnorm(weights, seed=3):
    """Weights whose batch-norm arrays are not the trivial 1/0 start, so inference BN shows."""
    rng = np.random.default_rng(seed)
    out = dict(weights)
    for key, value in weights.items():
        if key.endswith(("running_var", "bn1.weight", "bn2.weight", "bn3.weight")):
            out[key] = rng.uniform(0.5, 1.5, value.shape).astype(value.dtype)
        elif key.endswith(("running_mean", ".bias")) and key.startswith("bn"):
            out[key] = rng.normal(0, 0.5, value.shape).astype(value.dtype)
    return out


def reference_logits(spec, weights, x, training=False, masks=None):
    """The model's logits in float64 from reference/ops.py, one layer after the other."""
    return reference_models.forward(spec, weights, x, training, masks)[0]


def reference_loss(spec, weights, x, y, masks=None):
    """Training-mode loss: mean cross-entropy + 0.5 * weight_decay * sum of decayed w^2."""
    return reference_models.loss(spec, weights, x, y, masks)[0]


# ---------------------------------------------------------------------------------------------
# building, weights, prediction


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("input_shape", INPUT_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name, options", MODEL_CASES, ids=MODEL_IDS)
def test_model_builds_round_trips_and_predicts_like_the_reference(name, options, input_shape,
                                                                  dtype):
    model = B.build_model(name, input_shape, NUM_CLASSES, seed=1, dtype=dtype, **options)
    spec = model.spec
    assert model.dtype == np.dtype(dtype)
    weights = model.get_weights()
    assert {k: v.shape for k, v in weights.items()} == spec.weight_shapes()
    assert all(v.dtype == np.dtype(dtype) for v in weights.values())
    expected_start = reference_models.initial_weights(spec, 1, dtype)
    assert all(np.array_equal(weights[k], expected_start[k]) for k in weights)

    # exact round trip, and set_weights really loads (into another model)
    busy = _with_busy_batchnorm(weights)
    model.set_weights(busy)
    again = model.get_weights()
    model.set_weights(again)
    assert all(np.array_equal(model.get_weights()[k], busy[k]) for k in busy)
    other = B.build_model(name, input_shape, NUM_CLASSES, seed=2, dtype=dtype, **options)
    other.set_weights(busy)

    x = _x(input_shape).astype(dtype)
    logits = model.predict(x)
    assert logits.shape == (BATCH, NUM_CLASSES) and logits.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(other.predict(x), logits)
    # another batch size changes the GEMM shapes, hence BLAS's summation order: not bitwise
    assert normalized_error(model.predict(x, batch_size=2), logits) < tolerance(
        dtype, "conv2d", "y")
    expected = reference_logits(spec, busy, x)
    assert normalized_error(logits, expected) < tolerance(dtype, "conv2d", "y")


@pytest.mark.parametrize("name, options", MODEL_CASES, ids=MODEL_IDS)
def test_training_loss_matches_the_reference(name, options):
    """Training mode (batch statistics, injected masks) and the L2 term, in float64."""
    model = B.build_model(name, (3, 12, 10), NUM_CLASSES, dtype="float64", weight_decay=0.05,
                          **options)
    model.set_weights(_with_busy_batchnorm(model.get_weights()))
    x, y, masks = _x((3, 12, 10)), _y(), _masks(model)
    loss, _ = B.gradients(model, x, y, masks=masks)
    expected = reference_loss(model.spec, model.get_weights(), x, y, masks)
    assert abs(loss - expected) <= 1e-10 * abs(expected)


# ---------------------------------------------------------------------------------------------
# gradient check


def _sampled_indices(shape, rng, count=30):
    size = int(np.prod(shape))
    flat = rng.choice(size, min(count, size), replace=False)
    return [np.unravel_index(i, shape) for i in flat]


def _training_loss(model, x, y, masks):
    """The loss gradients() differentiates, by forward only (checked against the reference in
    test_training_loss_matches_the_reference). Changes running statistics: callers restore."""
    logits = model.forward(x, training=True, masks=masks)
    l2 = sum(float(B.l2_regularization([model.params[key] for key in names], coefficient)[0])
             for coefficient, names in model.spec.l2_groups())
    return float(B.softmax_cross_entropy(logits, y)[0]) + l2


@pytest.mark.parametrize("name, options", MODEL_CASES, ids=MODEL_IDS)
def test_gradients_match_central_differences(name, options):
    # He init for every model: the tutorials' normal(0.01)/normal(0.001) make gradients so
    # small that central-difference rounding (~1e-10 absolute) would dominate them. A weight
    # decay makes the L2 gradient part of every check; batch norm runs in training mode.
    input_shape = (2, 9, 8)  # an odd height: "same" padding puts its extra row at the bottom
    model = B.build_model(name, input_shape, NUM_CLASSES, dtype="float64", init="he_normal",
                          weight_decay=0.05, **options)
    model.set_weights(_with_busy_batchnorm(model.get_weights()))
    x, y, masks = _x(input_shape), _y(), _masks(model)
    before = model.get_weights()
    _, grads = B.gradients(model, x, y, masks=masks)
    assert all(np.array_equal(before[k], v) for k, v in model.get_weights().items()), (
        "gradients() changed the model")
    assert set(grads) == set(model.params)

    rng, eps = np.random.default_rng(0), 1e-6
    sampled = {}  # name -> (analytic, numeric) at the sampled elements
    for key, w in model.params.items():
        indices = _sampled_indices(w.shape, rng)
        numeric = []
        for idx in indices:
            original = w[idx]
            w[idx] = original + eps
            plus = _training_loss(model, x, y, masks)
            w[idx] = original - eps
            minus = _training_loss(model, x, y, masks)
            w[idx] = original
            numeric.append((plus - minus) / (2 * eps))
        sampled[key] = (np.array([grads[key][idx] for idx in indices]), np.array(numeric))
    model.set_weights(before)  # the probes ran batch norm in training mode

    # Error relative to the array's largest gradient, but never to less than 1e-3 of the
    # model's: a Linear bias right before batch norm has an exactly-zero gradient, where
    # central differences return rounding noise (~1e-10) and a pure ratio would read 100 %.
    floor = 1e-3 * max(np.max(np.abs(a)) for a, _ in sampled.values())
    errors = {key: float(np.max(np.abs(a - n))
                         / max(np.max(np.abs(a)), np.max(np.abs(n)), floor))
              for key, (a, n) in sampled.items()}
    # Central differences are off by ~2e-9 absolute here (rounding: 1e-16 * loss / eps): well
    # below 1e-5 of any gradient in scale, while a wrong backward is off by 1e-2 or more.
    assert max(errors.values()) < 1e-5, errors


# ---------------------------------------------------------------------------------------------
# the loss


@pytest.mark.parametrize("name, input_shape", [("simple_cnn", (1, 28, 28)),
                                               ("three_layer_cnn", (3, 32, 32))])
def test_initial_loss_is_ln_num_classes_at_the_tutorials_small_init(name, input_shape):
    model = B.build_model(name, input_shape, 10, dtype="float64")
    x = np.random.default_rng(0).uniform(0, 1, (16, *input_shape))
    loss, _ = B.gradients(model, x, _y(16, 10))
    assert abs(loss - math.log(10)) < 0.05


def test_l2_term_adds_exactly_half_wd_sum_of_squares_and_its_gradient():
    wd = 0.3
    kwargs = dict(input_shape=(3, 12, 10), num_classes=NUM_CLASSES, dtype="float64")
    plain = B.build_model("three_layer_cnn", weight_decay=0.0, **kwargs)
    decayed = B.build_model("three_layer_cnn", weight_decay=wd, **kwargs)
    x, y = _x((3, 12, 10)), _y()
    loss0, grads0 = B.gradients(plain, x, y)
    loss1, grads1 = B.gradients(decayed, x, y)
    w = decayed.get_weights()
    term = 0.5 * wd * sum(np.sum(w[k] ** 2) for k in decayed.spec.decayed())
    assert decayed.spec.decayed() == ["conv1.weight", "fc1.weight", "fc2.weight"]
    assert abs((loss1 - loss0) - term) <= 1e-12 * loss1
    for key in grads0:
        extra = wd * w[key] if key in decayed.spec.decayed() else 0.0
        np.testing.assert_allclose(grads1[key], grads0[key] + extra, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# training step


def test_train_step_is_gradients_then_the_update_with_the_rng_masks():
    model = B.build_model("deep_cnn", (3, 12, 10), NUM_CLASSES, dtype="float64")
    twin = B.build_model("deep_cnn", (3, 12, 10), NUM_CLASSES, dtype="float64")
    x, y, lr = _x((3, 12, 10)), _y(), 0.1
    masks = reference_models.dropout_masks(model.spec, BATCH, np.random.default_rng(7))
    expected_loss, grads = B.gradients(twin, x, y, masks=masks)
    loss = B.train_step(model, B.build_optimizer("sgd", model, lr=lr), x, y,
                        rng=np.random.default_rng(7))
    assert loss == expected_loss
    for key, w in twin.get_weights().items():
        np.testing.assert_array_equal(model.get_weights()[key], w - lr * grads[key])


def test_train_step_without_rng_draws_masks_from_the_model_seed():
    def losses(seed):
        model = B.build_model("mlp", (1, 8, 8), NUM_CLASSES, seed=seed, dropout=0.5)
        opt = B.build_optimizer("sgd", model, lr=1e-3)
        return [B.train_step(model, opt, _x((1, 8, 8)), _y()) for _ in range(3)]

    assert losses(0) == losses(0)
    assert losses(0) != losses(1)


def test_train_step_updates_batchnorm_running_stats_like_pytorch():
    model = B.build_model("mlp", (1, 8, 8), NUM_CLASSES, dtype="float64", hidden=(6,),
                          batchnorm=True)
    x = _x((1, 8, 8), n=5)
    w = model.get_weights()
    h = x.reshape(5, -1) @ w["fc1.weight"].T + w["fc1.bias"]  # the input of bn1
    B.train_step(model, B.build_optimizer("sgd", model), x, _y(5))
    after = model.get_weights()
    np.testing.assert_allclose(after["bn1.running_mean"], 0.1 * h.mean(0), rtol=1e-12)
    np.testing.assert_allclose(after["bn1.running_var"], 0.9 + 0.1 * h.var(0, ddof=1),
                               rtol=1e-12)


@pytest.mark.parametrize("name", B.OPTIMIZERS)
def test_float32_stays_float32_through_training(name):
    model = B.build_model("simple_cnn", (1, 8, 8), NUM_CLASSES, dtype="float32")
    opt = B.build_optimizer(name, model, lr=1e-3, weight_decay=1e-4)
    loss = B.train_step(model, opt, _x((1, 8, 8)).astype(np.float32), _y())
    assert isinstance(loss, float)
    assert all(v.dtype == np.float32 for v in model.get_weights().values())
    assert all(a.dtype == np.float32 for s in opt.state.values() for a in s.values()
               if isinstance(a, np.ndarray))


# ---------------------------------------------------------------------------------------------
# optimizers: the textbook formulas written out again, in plain Python floats


def _textbook(name, w, g, state, lr, hp):
    """One element's update by the docs/models.md table (g includes weight decay)."""
    if name == "sgd":
        return w - lr * g
    if name in ("momentum", "nesterov"):
        v = hp["momentum"] * state.get("v", 0.0) - lr * g
        state["v"] = v
        return w + v if name == "momentum" else w + hp["momentum"] * v - lr * g
    if name == "adagrad":
        state["h"] = state.get("h", 0.0) + g * g
        return w - lr * g / (math.sqrt(state["h"]) + hp["eps"])
    if name == "rmsprop":
        state["h"] = hp["alpha"] * state.get("h", 0.0) + (1 - hp["alpha"]) * (g * g)
        return w - lr * g / (math.sqrt(state["h"]) + hp["eps"])
    b1, b2 = hp["beta1"], hp["beta2"]
    t = state["t"] = state.get("t", 0) + 1
    state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * (g * g)
    m_hat, v_hat = state["m"] / (1 - b1**t), state["v"] / (1 - b2**t)
    return w - lr * m_hat / (math.sqrt(v_hat) + hp["eps"])


# Non-default hyperparameters, so that a rule ignoring one would fail.
HYPER = {
    "sgd": {},
    "momentum": dict(momentum=0.8),
    "nesterov": dict(momentum=0.7),
    "adagrad": dict(eps=1e-3),
    "rmsprop": dict(alpha=0.9, eps=1e-4),
    "adam": dict(betas=(0.8, 0.95), eps=1e-3),
}


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("name", B.OPTIMIZERS)
def test_optimizer_steps_follow_the_textbook_formulas(name, weight_decay):
    w0 = np.array([0.5, -1.25, 2.0])
    grads = [np.array([0.3, -0.2, 0.05]), np.array([-0.1, 0.4, 0.2]),
             np.array([0.25, 0.0, -0.3])]
    lrs = [0.1, 0.01, 0.05]  # the lr changes between steps and must take effect at once
    params = {"w": w0.copy()}
    opt = B.Optimizer(name, params, lr=lrs[0], weight_decay=weight_decay, **HYPER[name])
    assert opt.lr == lrs[0]
    hp = opt.hyper
    expected, states = list(w0), [{} for _ in w0]
    for lr, g in zip(lrs, grads):
        opt.lr = lr
        opt.step({"w": g})
        expected = [_textbook(name, wi, gi + weight_decay * wi, st, lr, hp)
                    for wi, gi, st in zip(expected, g, states)]
        np.testing.assert_allclose(params["w"], expected, rtol=1e-14, atol=1e-15)
    if name == "adam":
        assert (hp["beta1"], hp["beta2"]) == (0.8, 0.95)


def test_optimizer_defaults_are_pytorchs():
    expected = {"momentum": {"momentum": 0.9}, "adagrad": {"eps": 1e-10},
                "rmsprop": {"alpha": 0.99, "eps": 1e-8},
                "adam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}}
    model = B.build_model("mlp", (1, 4, 4), 3, hidden=(2,))
    for name in B.OPTIMIZERS:
        opt = B.build_optimizer(name, model)
        assert opt.lr == 0.01 and opt.implementation == "textbook"
        assert opt.hyper == {**expected.get(name, {}), **(
            {"momentum": 0.9} if name == "nesterov" else {}), "weight_decay": 0.0}


@pytest.mark.parametrize("name, hyper, error, word", [
    ("adam", dict(momentum=0.9), TypeError, "momentum"),
    ("sgd", dict(momentum=0.9), TypeError, "momentum"),
    ("rmsprop", dict(betas=(0.9, 0.99)), TypeError, "betas"),
    ("adam", dict(betas=(0.9, 0.99), beta1=0.9), TypeError, "betas"),
    ("sgd", dict(lr=0.0), ValueError, "lr"),
    ("sgd", dict(lr=-1.0), ValueError, "lr"),
    ("momentum", dict(momentum=1.0), ValueError, "momentum"),
    ("nesterov", dict(momentum=-0.1), ValueError, "momentum"),
    ("adagrad", dict(eps=0.0), ValueError, "eps"),
    ("adam", dict(betas=(0.9, 1.0)), ValueError, "betas"),
    ("adam", dict(beta1=1.5), ValueError, "beta1"),
    ("rmsprop", dict(alpha=1.0), ValueError, "alpha"),
    ("adam", dict(weight_decay=-1e-4), ValueError, "weight_decay"),
    ("adam", dict(implementation="fast"), ValueError, "implementation"),
    ("adamw", {}, ValueError, "name"),
])
def test_optimizer_validation_names_the_argument(name, hyper, error, word):
    model = B.build_model("mlp", (1, 4, 4), 3, hidden=(2,))
    with pytest.raises(error, match=word):
        B.build_optimizer(name, model, **hyper)


def test_optimizer_lr_setter_validates_and_implementations_are_all_the_textbook():
    model = B.build_model("mlp", (1, 4, 4), 3, hidden=(2,))
    for implementation in ("auto", "textbook", "native"):
        assert B.build_optimizer("adam", model, implementation=implementation
                                 ).implementation == "textbook"
    opt = B.build_optimizer("sgd", model)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = 0
    with pytest.raises(KeyError, match="fc1.weight"):
        opt.step({})


# ---------------------------------------------------------------------------------------------
# argument validation of models


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(name="resnet"), ValueError, "name"),
    (dict(input_shape=(1, 8)), ValueError, "input_shape"),
    (dict(num_classes=1), ValueError, "num_classes"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(init="glorot"), ValueError, "init"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (dict(depth=3), TypeError, "options"),
    (dict(name="three_layer_cnn", hidden=0), ValueError, "hidden: got 0"),
    (dict(name="three_layer_cnn", hidden=2.5), ValueError, "hidden: got 2.5"),
    (dict(name="three_layer_cnn", batchnorm=1), TypeError, "batchnorm: got 1"),
    (dict(name="cifar_lrn_cnn", norm2="yes"), TypeError, "norm2: got 'yes'"),
    (dict(name="signs_scratch_cnn", flatten_order="chw"), ValueError,
     "flatten_order: got 'chw', expected one of 'nchw', 'nhwc'"),
])
def test_build_model_validation_names_the_argument(kwargs, error, word):
    args = {**dict(name="simple_cnn", input_shape=(1, 8, 8), num_classes=3), **kwargs}
    with pytest.raises(error, match=word):
        B.build_model(**args)


# ---------------------------------------------------------------------------------------------
# the tutorials' networks as written (issue 11; docs/models.md lists each one's deviations)


def _kinds(spec):
    return [layer.kind for layer in spec.layers]


def test_deep_cnn_is_the_books_deep_convnet():
    spec = reference_models.resolve("deep_cnn", (1, 28, 28), 10)
    convs = [layer for layer in spec.layers if layer.kind == "Conv2d"]
    assert [c.params["out_channels"] for c in convs] == [16, 16, 32, 32, 64, 64]
    assert [c.params["padding"] for c in convs] == [1, 1, 1, 2, 1, 1]  # the fourth pads 2
    pools = [layer.out_shape for layer in spec.layers if layer.kind == "MaxPool2d"]
    assert pools == [(16, 14, 14), (32, 8, 8), (64, 4, 4)]
    assert spec.weight_shapes()["fc1.weight"] == (50, 1024)  # 64 * 4 * 4
    assert [layer.params["p"] for layer in spec.dropout_layers()] == [0.5, 0.5]


def test_cifar_lrn_cnn_is_the_tutorials_network_with_its_bugs_fixed():
    spec = reference_models.resolve("cifar_lrn_cnn", (3, 32, 32), 10)
    assert _kinds(spec) == ["Conv2d", "ReLU", "MaxPool2d", "LocalResponseNorm", "Conv2d",
                            "ReLU", "MaxPool2d", "Flatten", "Linear", "ReLU", "Linear"]
    layers = {layer.name: layer for layer in spec.layers}
    assert layers["pool1"].params == dict(kernel_size=3, stride=2, padding="same")
    assert layers["pool2"].params == dict(kernel_size=2, stride=2, padding="same")
    assert spec.weight_shapes()["fc1.weight"] == (256, 8 * 8 * 64)  # the tutorial's indim
    assert spec.decay() == {"conv1.weight": 0.005, "conv2.weight": 0.005,
                            "fc1.weight": 0.004, "fc2.weight": 0.004}
    assert {spec.layer_init(layer) for layer in spec.layers} == {"truncated_normal(0.05)"}
    weights = reference_models.initial_weights(spec, 0, "float64")
    assert max(float(np.max(np.abs(weights[k]))) for k in spec.decayed()) <= 0.1  # 2 stddev
    # norm2=True: the second LRN applied, after pool2
    kinds = _kinds(reference_models.resolve("cifar_lrn_cnn", (3, 32, 32), 10, norm2=True))
    assert kinds[6:9] == ["MaxPool2d", "LocalResponseNorm", "Flatten"]


def test_signs_networks_as_written():
    spec = reference_models.resolve("signs_cnn", (3, 64, 64), 6)
    assert spec.weight_shapes() == {"conv1.weight": (8, 3, 4, 4),
                                    "conv2.weight": (16, 8, 2, 2),  # no conv bias
                                    "fc1.weight": (6, 16 * 2 * 2), "fc1.bias": (6,)}
    layers = {layer.name: layer for layer in spec.layers}
    assert [spec.layer_init(layers[n]) for n in ("conv1", "conv2", "fc1")] == [
        "xavier_normal", "xavier_normal", "xavier_uniform"]
    fc1 = reference_models.initial_weights(spec, 0, "float64")["fc1.weight"]
    limit = math.sqrt(6 / (64 + 6))
    assert np.max(np.abs(fc1)) <= limit and np.max(np.abs(fc1)) > 0.9 * limit  # uniform
    scratch = reference_models.resolve("signs_scratch_cnn", (3, 64, 64), 6)
    assert _kinds(scratch) == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    assert scratch.layers[0].params == dict(out_channels=10, kernel_size=3, stride=2,
                                            padding=2, bias=True, in_channels=3)
    assert scratch.layers[0].out_shape == (10, 33, 33)
    assert scratch.layers[2].out_shape == (10, 32, 32)  # window 2, stride 1: overlapping
    assert scratch.weight_shapes()["fc1.weight"] == (6, 10240) and scratch.init == "he_normal"


def test_three_layer_cnn_options():
    spec = reference_models.resolve("three_layer_cnn", (3, 32, 32), 10, hidden=500)
    assert spec.weight_shapes()["fc1.weight"] == (500, 32 * 16 * 16)
    assert spec.init == "normal(0.001)" and spec.weight_decay == 1e-3
    bn = reference_models.resolve("three_layer_cnn", (3, 32, 32), 10, batchnorm=True)
    assert _kinds(bn)[:3] == ["Conv2d", "BatchNorm2d", "ReLU"]
    assert "conv1.bias" not in bn.weight_shapes()  # beta is the bias
    assert bn.weight_shapes()["bn1.running_var"] == (32,)
    assert bn.decayed() == ["conv1.weight", "fc1.weight", "fc2.weight"]


def test_init_and_weight_decay_arguments_override_every_layers_own():
    spec = reference_models.resolve("cifar_lrn_cnn", (3, 8, 6), 5, init="he_normal",
                                    weight_decay=0.1)
    assert set(spec.decay().values()) == {0.1}
    assert spec.l2_groups() == [(0.1, spec.decayed())]
    assert {spec.layer_init(layer) for layer in spec.layers} == {"he_normal"}
    kept = reference_models.resolve("signs_cnn", (3, 8, 6), 5, weight_decay=0.1)
    assert [spec.layer_init(layer) for layer in kept.layers if layer.kind == "Linear"] == [
        "xavier_uniform"]  # weight_decay alone leaves the layers' own initialisers
    assert reference_models.resolve("cifar_lrn_cnn", (3, 8, 6), 5, weight_decay=0).l2_groups() \
        == []


def test_tutorial_l2_coefficients_match_the_reference_loss():
    """cifar_lrn_cnn's own coefficients (0.005 conv, 0.004 dense) in the loss and gradients."""
    shape = (3, 8, 6)
    model = B.build_model("cifar_lrn_cnn", shape, NUM_CLASSES, dtype="float64")
    plain = B.build_model("cifar_lrn_cnn", shape, NUM_CLASSES, dtype="float64",
                          weight_decay=0.0)
    x, y = _x(shape), _y()
    loss, grads = B.gradients(model, x, y)
    loss0, grads0 = B.gradients(plain, x, y)
    w = model.get_weights()
    assert loss == pytest.approx(reference_loss(model.spec, w, x, y), rel=1e-12)
    term = sum(0.5 * c * float(np.sum(w[k] ** 2)) for k, c in model.spec.decay().items())
    assert loss == pytest.approx(loss0 + term, rel=1e-12)
    for key, c in (("conv1.weight", 0.005), ("fc1.weight", 0.004)):
        np.testing.assert_allclose(grads[key] - grads0[key], c * w[key], atol=1e-14)
    np.testing.assert_array_equal(grads["fc1.bias"], grads0["fc1.bias"])  # biases: no L2


def test_bias_free_conv_layer_has_no_bias_and_matches_the_reference():
    layer = B.Conv2d(2, 3, 3, padding=1, bias=False, dtype="float64")
    assert list(layer.params) == ["weight"]
    x = _x((2, 5, 4))
    y = layer.forward(x)
    expected, _ = reference_ops.conv2d_forward(x, layer.params["weight"], None, 1, 1)
    assert normalized_error(y, expected) < 1e-12
    layer.backward(np.ones_like(y))
    assert list(layer.grads) == ["weight"]
    with pytest.raises(TypeError, match="bias: got 0"):
        B.Conv2d(2, 3, 3, bias=0)


def test_flatten_nhwc_is_the_channels_last_order_and_its_backward_the_inverse():
    x = _x((2, 3, 4))
    layer = B.Flatten(order="nhwc")
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1).reshape(BATCH, -1))
    dy = _x((24,), seed=5)
    np.testing.assert_array_equal(layer.backward(dy),
                                  dy.reshape(BATCH, 3, 4, 2).transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="order: got 'hwc'"):
        B.Flatten(order="hwc")


def test_set_weights_rejects_missing_extra_and_misshapen_arrays_and_changes_nothing():
    model = B.build_model("mlp", (1, 4, 4), 3, hidden=(2,), batchnorm=True)
    good = model.get_weights()
    with pytest.raises(KeyError, match="bn1.running_var"):
        model.set_weights({k: v for k, v in good.items() if k != "bn1.running_var"})
    with pytest.raises(KeyError, match="fc9.weight"):
        model.set_weights({**good, "fc9.weight": good["fc1.weight"]})
    bad = {k: v + 1 for k, v in good.items()}
    bad["fc2.weight"] = np.zeros((3, 3))
    with pytest.raises(ValueError, match="fc2.weight"):
        model.set_weights(bad)
    assert all(np.array_equal(model.get_weights()[k], v) for k, v in good.items())


def test_forward_checks_the_input_and_the_masks():
    model = B.build_model("mlp", (1, 4, 4), 3, hidden=(2,), dropout=0.5)
    with pytest.raises(ValueError, match="x"):
        model.predict(np.zeros((2, 1, 4, 5)))
    with pytest.raises(KeyError, match="dropout1"):
        model.forward(np.zeros((2, 1, 4, 4), np.float32), masks={})


def test_layers_keep_their_own_state():
    conv = B.Conv2d(2, 3, (3, 2), stride=2, padding="same", dtype="float64")
    assert conv.params["weight"].shape == (3, 2, 3, 2) and set(conv.grads) == set()
    x = _x((2, 5, 4))
    y = conv.forward(x)
    dx = conv.backward(np.ones_like(y))
    assert dx.shape == x.shape and set(conv.grads) == {"weight", "bias"}
    np.testing.assert_array_equal(conv.grads["bias"], np.full(3, y[:, 0].size))
    bn = B.BatchNorm1d(4, dtype="float64")
    with pytest.raises(ValueError, match="x"):
        bn.forward(_x((4, 2, 2)))
    drop = B.Dropout(0.5)
    mask = np.array([[1, 0, 1, 1]])
    np.testing.assert_array_equal(drop.forward(np.ones((1, 4)), mask=mask), 2.0 * mask)
    np.testing.assert_array_equal(drop.backward(np.ones((1, 4))), 2.0 * mask)
    np.testing.assert_array_equal(drop.forward(np.ones((1, 4)), training=False), np.ones((1, 4)))


@pytest.mark.parametrize("name, options", MODEL_CASES, ids=MODEL_IDS)
def test_backward_without_input_grad_gives_the_same_weight_gradients(name, options):
    # what train_step uses: the first layer with parameters skips its input gradient
    model = B.build_model(name, (3, 12, 10), NUM_CLASSES, dtype="float64", **options)
    masks = reference_models.dropout_masks(model.spec, BATCH, np.random.default_rng(1))
    dlogits = np.random.default_rng(2).standard_normal((BATCH, NUM_CLASSES))
    model.forward(_x((3, 12, 10)), masks=masks)
    dx = model.backward(dlogits)
    full = dict(model.grads)
    assert dx.shape == (BATCH, 3, 12, 10)
    assert model.backward(dlogits, input_grad=False) is None
    assert list(model.grads) == list(full)
    for key, g in full.items():
        np.testing.assert_array_equal(model.grads[key], g, err_msg=key)


def test_input_grad_is_checked():
    conv = B.Conv2d(1, 2, 3, dtype="float64")
    conv.forward(_x((1, 5, 5)))
    with pytest.raises(TypeError, match="input_grad"):
        conv.backward(np.ones((BATCH, 2, 3, 3)), input_grad="no")
    assert conv.backward(np.ones((BATCH, 2, 3, 3)), input_grad=False) is None
    relu = B.ReLU()
    relu.forward(_x((1, 2, 2)))
    with pytest.raises(ValueError, match="input_grad: got False, but ReLU has no parameters"):
        relu.backward(np.ones((BATCH, 1, 2, 2)), input_grad=False)


def test_a_tutorials_nhwc_dense_weight_loads_as_its_transpose_with_flatten_order_nhwc():
    """000's NumPy SIGNS CNN: Z = A.reshape(m, -1) @ W + b on NHWC activations A, W (in, out).
    With flatten_order="nhwc", fc1.weight = W.T gives its logits, no row permuted."""
    shape = (3, 9, 7)
    model = B.build_model("signs_scratch_cnn", shape, NUM_CLASSES, dtype="float64",
                          flatten_order="nhwc")
    spec, weights, x = model.spec, model.get_weights(), _x(shape)
    pooled, _ = reference_ops.max_pool2d_forward(
        np.maximum(reference_ops.conv2d_forward(x, weights["conv1.weight"],
                                                weights["conv1.bias"], 2, 2)[0], 0), 2, 1)
    w_tutorial = np.random.default_rng(4).standard_normal((pooled[0].size, NUM_CLASSES))
    b = weights["fc1.bias"]
    tutorial = pooled.transpose(0, 2, 3, 1).reshape(BATCH, -1) @ w_tutorial + b  # NHWC
    model.set_weights({**weights, "fc1.weight": w_tutorial.T})
    assert normalized_error(model.predict(x), tutorial) < 1e-12
    assert spec.layers[3].params == dict(order="nhwc")
