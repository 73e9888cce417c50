"""The PyTorch layers, models, optimizers and training against float64 NumPy written here.

The expected values come from reference/ops.py (slow loops, float64) chained layer by layer
over the same canonical weights, from central differences, and from the optimizer table of
docs/models.md written in NumPy below; never from the backend under test.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from parity_tests.conftest import load_or_skip
from parity_tests.tolerances import normalized_error
from reference import models as reference_models
from reference import ops as ref
from reference.models import MODELS, dropout_masks

torch = pytest.importorskip("torch")
T = load_or_skip("torch", module_level=True)

# float64 against the loop reference: agreement is ~1e-15 (tolerances.py's float64 entry).
TOL64 = 1e-10
# float32 logits after a few conv/linear reductions (as test_training_parity.py).
TOL32 = 1e-5
# Two float64 implementations of one update rule over 5 steps: only rounding separates them.
TOL_OPT = 1e-12
NUM_CLASSES = 3

# ---------------------------------------------------------------------------------------------
# the expected values: reference/ops.py chained over the spec (reference.models)

reference_forward = reference_models.forward
reference_loss = reference_models.loss


def random_weights(model, seed=0):
    """The model's weights with random biases and batch-norm parameters and statistics, so that
    every canonical array changes the output (zeros and ones would hide a layout mistake)."""
    rng = np.random.default_rng(seed)
    weights = model.get_weights()
    for key, value in weights.items():
        if key.endswith(("bias", "running_mean")):
            value = rng.normal(0.0, 0.1, value.shape)
        elif key.endswith("running_var") or (key.endswith("weight") and value.ndim == 1):
            value = rng.uniform(0.5, 1.5, value.shape)
        weights[key] = value.astype(model.dtype)
    return weights


def data(input_shape, n=2, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, (n, *input_shape)).astype(dtype)
    return x, rng.integers(0, NUM_CLASSES, n)


def weights_error(got, want):
    """The largest normalised error over the arrays of two weight dicts (same keys)."""
    assert list(got) == list(want)
    return max(normalized_error(got[k], want[k]) for k in want)


# ---------------------------------------------------------------------------------------------
# models: build, layout, predict against the reference

# Every model of reference.models (mlp also with batch norm, dropout and other activations),
# for a single-channel square input and a multi-channel non-square one.
VARIANTS = {name: (name, {}) for name in MODELS}
VARIANTS.update({"mlp_bn_dropout_sigmoid": ("mlp", dict(hidden=(7, 5), batchnorm=True,
                                                         dropout=0.5, activation="sigmoid")),
                 "mlp_tanh": ("mlp", dict(hidden=(6,), activation="tanh")),
                 # the tutorial networks' options (reference.models)
                 "three_layer_cnn_bn": ("three_layer_cnn", dict(batchnorm=True, hidden=7)),
                 "cifar_lrn_cnn_norm2": ("cifar_lrn_cnn", dict(norm2=True)),
                 "cifar_lrn_cnn_nhwc": ("cifar_lrn_cnn", dict(flatten_order="nhwc")),
                 "signs_scratch_cnn_nhwc": ("signs_scratch_cnn", dict(flatten_order="nhwc"))})
INPUT_SHAPES = ((1, 8, 8), (3, 12, 10))
MODEL_CASES = [(v, s) for v in VARIANTS for s in INPUT_SHAPES]
MODEL_IDS = [f"{v}-{'x'.join(map(str, s))}" for v, s in MODEL_CASES]


def build(variant, input_shape, dtype="float64", **kwargs):
    name, options = VARIANTS[variant]
    # He-normal everywhere: the tutorials' tiny inits would give near-zero logits.
    kwargs.setdefault("init", "he_normal")
    return T.build_model(name, input_shape=input_shape, num_classes=NUM_CLASSES, seed=1,
                         dtype=dtype, **options, **kwargs)


@functools.cache
def expected_logits(variant, input_shape):
    model = build(variant, input_shape)
    weights = random_weights(model)
    x, _ = data(input_shape)
    logits, _ = reference_forward(model.spec, weights, x)
    return weights, x, logits


@pytest.mark.parametrize("variant,input_shape", MODEL_CASES, ids=MODEL_IDS)
def test_predict_matches_the_reference_float64(variant, input_shape):
    weights, x, want = expected_logits(variant, input_shape)
    model = build(variant, input_shape)
    model.set_weights(weights)
    logits = model.predict(x)
    assert logits.dtype == np.float64 and logits.shape == (len(x), NUM_CLASSES)
    assert normalized_error(logits, want) <= TOL64
    assert normalized_error(model.predict(x, batch_size=1), want) <= TOL64


@pytest.mark.parametrize("variant,input_shape", MODEL_CASES, ids=MODEL_IDS)
def test_predict_float32(variant, input_shape):
    weights, x, want = expected_logits(variant, input_shape)
    model = build(variant, input_shape, dtype="float32")
    assert model.dtype == np.float32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    model.set_weights(weights)  # float64 values cast to the model's dtype
    logits = model.predict(x.astype(np.float32))
    assert logits.dtype == np.float32
    assert normalized_error(logits, want) <= TOL32


@pytest.mark.parametrize("dtype", ("float32", "float64"))
@pytest.mark.parametrize("variant,input_shape", MODEL_CASES, ids=MODEL_IDS)
def test_weights_are_canonical_and_round_trip_bit_for_bit(variant, input_shape, dtype):
    model = build(variant, input_shape, dtype=dtype)
    shapes = model.spec.weight_shapes()
    weights = model.get_weights()
    assert list(weights) == list(shapes)  # canonical names, in layer order, no step counters
    assert {k: v.shape for k, v in weights.items()} == shapes
    assert all(v.dtype == np.dtype(dtype) for v in weights.values())
    new = random_weights(model, seed=2)
    model.set_weights(new)
    model.set_weights(model.get_weights())
    got = model.get_weights()
    for key in new:
        assert got[key].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got[key], new[key], err_msg=key)
    first = next(iter(got))
    got[first][...] = 0  # get_weights hands out copies
    np.testing.assert_array_equal(model.get_weights()[first], new[first])


def test_model_is_plain_pytorch():
    model = build("cifar_lrn_cnn", (3, 12, 10))
    assert isinstance(model, torch.nn.Module)
    assert [name for name, _ in model.named_children()] == [
        layer.name for layer in model.spec.layers]
    assert isinstance(model.conv1, torch.nn.Conv2d) and model.conv1.plan.native == (2, 2)
    assert isinstance(model.pool1, torch.nn.MaxPool2d) and model.pool1.plan.native is None
    assert isinstance(model.norm1, torch.nn.LocalResponseNorm)
    x, _ = data((3, 12, 10))
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(x))
    np.testing.assert_array_equal(logits.numpy(), model.predict(x))


# ---------------------------------------------------------------------------------------------
# layers with every padding form against the reference ops

PADDINGS = ("same", "valid", 1, (1, 0), ((0, 1), (1, 0)), ((1, 1), (0, 1)))
STRIDES = (1, 2, (2, 1))


@pytest.mark.parametrize("stride", STRIDES, ids=str)
@pytest.mark.parametrize("padding", PADDINGS, ids=str)
def test_padded_layers_match_the_reference(padding, stride):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 7, 6))
    conv = T.Conv2d(3, 4, (3, 2), stride, padding).double()
    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    cases = [(conv, ref.conv2d_forward(x, w, b, stride, padding)[0])]
    cases.append((T.MaxPool2d(3, stride, padding),
                  ref.max_pool2d_forward(x, 3, stride, padding)[0]))
    for include in (True, False):
        cases.append((T.AvgPool2d(3, stride, padding, count_include_pad=include),
                      ref.avg_pool2d_forward(x, 3, stride, padding, include)[0]))
    for layer, want in cases:
        with torch.no_grad():
            got = layer(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape, layer
        assert normalized_error(got, want) <= TOL64, layer


def test_dropout_layer_takes_a_mask_or_uses_torch():
    x = torch.ones(4, 5, dtype=torch.float64)
    mask = np.random.default_rng(0).random((4, 5)) >= 0.25
    layer = T.Dropout(0.25)
    np.testing.assert_array_equal(layer(x, mask).numpy(), mask / 0.75)
    layer.mask = mask
    np.testing.assert_array_equal(layer(x).numpy(), mask / 0.75)
    layer.mask = None
    torch.manual_seed(0)
    a = layer(x)
    assert set(np.unique(a.numpy())) <= {0.0, 1 / 0.75}
    assert torch.equal(layer.eval()(x), x)


# ---------------------------------------------------------------------------------------------
# gradients and training


def global_error(got, want):
    """max |got - want| over every array, over the largest |want| of any array.

    One scale for all arrays: a bias feeding a batch norm has gradient exactly 0, so its own
    scale is rounding noise."""
    scale = max(float(np.max(np.abs(v))) for v in want.values())
    return max(float(np.max(np.abs(got[k] - want[k]))) for k in want) / scale


def central_differences(model, x, y, masks=None, per_array=12, eps=1e-6, seed=0):
    """Central differences of gradients()'s loss for up to ``per_array`` entries of each
    trainable array; returns {name: (flat indices, numeric gradient)}."""
    rng = np.random.default_rng(seed)
    state = model.state_dict()
    out = {}
    for name, _ in model.named_parameters():
        flat = state[name].view(-1)
        picks = np.arange(flat.numel()) if flat.numel() <= per_array else rng.choice(
            flat.numel(), per_array, replace=False)
        numeric = []
        for i in picks:
            original = flat[i].item()
            values = []
            for delta in (eps, -eps):
                with torch.no_grad():
                    flat[i] = original + delta
                values.append(T.gradients(model, x, y, masks)[0])
            with torch.no_grad():
                flat[i] = original
            numeric.append((values[0] - values[1]) / (2 * eps))
        out[name] = (picks, np.array(numeric))
    return out


GRADIENT_CASES = {
    "simple_cnn": ("simple_cnn", (1, 6, 6), dict(weight_decay=0.05)),
    "mlp_bn_dropout": ("mlp_bn_dropout_sigmoid", (2, 3, 3), {}),
}


@pytest.mark.parametrize("case", GRADIENT_CASES)
def test_gradients_equal_central_differences(case):
    variant, shape, kwargs = GRADIENT_CASES[case]
    model = build(variant, shape, **kwargs)
    model.set_weights(random_weights(model))
    x, y = data(shape, n=4)
    masks = dropout_masks(model.spec, len(x), np.random.default_rng(3))
    before = model.get_weights()
    loss, grads = T.gradients(model, x, y, masks)
    want_loss, _ = reference_loss(model.spec, before, x, y, masks)
    assert loss == pytest.approx(want_loss, rel=TOL64)
    assert list(grads) == [n for n, _ in model.named_parameters()]
    assert all(g.dtype == np.float64 for g in grads.values())
    numeric = central_differences(model, x, y, masks)
    got = {name: grads[name].reshape(-1)[picks] for name, (picks, _) in numeric.items()}
    assert global_error(got, {name: n for name, (_, n) in numeric.items()}) <= 1e-7
    # the model is left as it was, running statistics included
    for key, value in model.get_weights().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_gradients_float32():
    model = build("simple_cnn", (1, 6, 6), dtype="float32")
    x, y = data((1, 6, 6), n=4, dtype="float32")
    loss, grads = T.gradients(model, x, y)
    model64 = build("simple_cnn", (1, 6, 6))
    loss64, grads64 = T.gradients(model64, x.astype(np.float64), y)
    assert isinstance(loss, float) and loss == pytest.approx(loss64, rel=1e-5)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert global_error(grads, grads64) <= 1e-5


TRAIN_CASES = {
    "mlp_bn_dropout": ("mlp_bn_dropout_sigmoid", (2, 3, 3), dict(weight_decay=0.01)),
    "deep_cnn": ("deep_cnn", (1, 8, 8), {}),  # dropout on the hidden layer AND the logits
}


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train_step_with_rng_uses_the_reference_masks(case):
    variant, shape, kwargs = TRAIN_CASES[case]
    model = build(variant, shape, **kwargs)
    model.set_weights(random_weights(model))
    x, y = data(shape, n=6)
    before = model.get_weights()
    masks = dropout_masks(model.spec, len(x), np.random.default_rng(5))  # drawn by hand
    want_loss, want_stats = reference_loss(model.spec, before, x, y, masks)
    _, grads = T.gradients(model, x, y, masks)
    opt = T.build_optimizer("sgd", model, lr=0.1)
    loss = T.train_step(model, opt, x, y, rng=np.random.default_rng(5))
    assert isinstance(loss, float)
    assert loss == pytest.approx(want_loss, rel=TOL64)
    after = model.get_weights()
    want = {k: before[k] - 0.1 * grads[k] if k in grads else want_stats.get(k, before[k])
            for k in before}
    assert weights_error(after, want) <= TOL64  # the update, and PyTorch's running stats


def test_without_masks_torch_dropout_draws_them():
    model = build("deep_cnn", (1, 8, 8))
    x, y = data((1, 8, 8), n=4)
    losses = []
    for seed in (0, 1, 0):
        torch.manual_seed(seed)
        losses.append(T.gradients(model, x, y)[0])
    assert losses[0] == losses[2]  # torch's generator draws the masks
    assert abs(losses[0] - losses[1]) > 1e-6  # another seed drops other units
    opt = T.build_optimizer("sgd", model, lr=0.01)
    assert np.isfinite(T.train_step(model, opt, x, y))
    np.testing.assert_array_equal(model.predict(x), model.predict(x))  # inference: no dropout


# ---------------------------------------------------------------------------------------------
# optimizers: native (torch.optim) vs textbook (TextbookOptimizer) vs NumPy


def numpy_textbook(name, w, g, state, lr, hyper, torch_momentum=False):
    """One update of the docs/models.md table in NumPy (g includes weight_decay * w).

    torch_momentum: torch.optim.SGD's momentum form instead (b = mu b + g; w -= lr b)."""
    mu = hyper.get("momentum", 0.9)
    if name == "sgd":
        return w - lr * g
    if name in ("momentum", "nesterov") and torch_momentum:
        state["b"] = mu * state.get("b", 0.0) + g
        return w - lr * (state["b"] if name == "momentum" else g + mu * state["b"])
    if name in ("momentum", "nesterov"):
        state["v"] = mu * state.get("v", 0.0) - lr * g
        return w + (state["v"] if name == "momentum" else mu * state["v"] - lr * g)
    if name in ("adagrad", "rmsprop"):
        eps = hyper.get("eps", 1e-10 if name == "adagrad" else 1e-8)
        if name == "adagrad":
            state["h"] = state.get("h", 0.0) + g * g
        else:
            alpha = hyper.get("alpha", 0.99)
            state["h"] = alpha * state.get("h", 0.0) + (1 - alpha) * g * g
        return w - lr * g / (np.sqrt(state["h"]) + eps)
    b1, b2 = hyper.get("betas", (0.9, 0.999))
    eps = hyper.get("eps", 1e-8)
    state["t"] = t = state.get("t", 0) + 1
    state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
    state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
    return w - lr * (state["m"] / (1 - b1 ** t)) / (np.sqrt(state["v"] / (1 - b2 ** t)) + eps)


# Non-default values where they matter: eps comparable to sqrt(h) shows where eps sits.
HYPER = {"sgd": {}, "momentum": {"momentum": 0.8}, "nesterov": {"momentum": 0.8},
         "adagrad": {"eps": 1e-3}, "rmsprop": {"alpha": 0.9, "eps": 1e-3},
         "adam": {"betas": (0.8, 0.95), "eps": 1e-3}}
SHAPE = (1, 6, 6)
STEPS = 5


def run(name, implementation, weight_decay=0.0, lrs=(0.05,) * STEPS):
    """Weights after one step per lr in ``lrs`` (lr set between steps), torch backend."""
    model = build("simple_cnn", SHAPE)
    hyper = {**HYPER[name], "weight_decay": weight_decay}
    opt = T.build_optimizer(name, model, lr=lrs[0], implementation=implementation, **hyper)
    for step, lr in enumerate(lrs):
        opt.lr = lr
        T.train_step(model, opt, *data(SHAPE, n=4, seed=step))
    return model.get_weights()


def run_numpy(name, weight_decay=0.0, lrs=(0.05,) * STEPS, torch_momentum=False):
    """The same run with the update in NumPy (gradients from T.gradients)."""
    model = build("simple_cnn", SHAPE)
    hyper = HYPER[name]
    states = {}
    for step, lr in enumerate(lrs):
        _, grads = T.gradients(model, *data(SHAPE, n=4, seed=step))
        weights = model.get_weights()
        for key, g in grads.items():
            g = g + weight_decay * weights[key]  # coupled weight decay
            weights[key] = numpy_textbook(name, weights[key], g, states.setdefault(key, {}),
                                          lr, hyper, torch_momentum)
        model.set_weights(weights)
    return model.get_weights()


@pytest.mark.parametrize("weight_decay", (0.0, 0.1), ids=("no_decay", "decay"))
@pytest.mark.parametrize("name", HYPER)
def test_native_textbook_and_numpy_agree(name, weight_decay):
    native = run(name, "native", weight_decay)
    textbook = run(name, "textbook", weight_decay)
    expected = run_numpy(name, weight_decay)
    assert weights_error(native, expected) <= TOL_OPT
    assert weights_error(textbook, expected) <= TOL_OPT
    assert weights_error(run(name, "auto", weight_decay), native) == 0.0  # auto is native
    assert weights_error(native, build("simple_cnn", SHAPE).get_weights()) > 1e-3  # it moved


LR_SCHEDULE = (0.1, 0.1, 0.1, 0.02, 0.02, 0.02)


@pytest.mark.parametrize("name", HYPER)
def test_learning_rate_change(name):
    """torch's momentum/nesterov apply a new lr to the whole velocity (module docstring of
    impls/torch/optimizers.py): after an lr change native and textbook part; the others agree."""
    native = run(name, "native", lrs=LR_SCHEDULE)
    textbook = run(name, "textbook", lrs=LR_SCHEDULE)
    assert weights_error(textbook, run_numpy(name, lrs=LR_SCHEDULE)) <= TOL_OPT
    if name in ("momentum", "nesterov"):
        torch_form = run_numpy(name, lrs=LR_SCHEDULE, torch_momentum=True)
        assert weights_error(native, torch_form) <= TOL_OPT
        assert weights_error(native, textbook) > 1e-6
    else:
        assert weights_error(native, textbook) <= TOL_OPT


def test_optimizer_wrapper():
    model = build("simple_cnn", SHAPE)
    opt = T.build_optimizer("adam", model, lr=0.01, beta1=0.8, beta2=0.95)
    assert isinstance(opt.torch_optimizer, torch.optim.Adam)
    assert opt.torch_optimizer.defaults["betas"] == (0.8, 0.95)
    assert opt.implementation == "native" and opt.lr == 0.01
    opt.lr = 0.5
    assert [g["lr"] for g in opt.torch_optimizer.param_groups] == [0.5]
    textbook = T.build_optimizer("momentum", model, implementation="textbook")
    assert isinstance(textbook.torch_optimizer, torch.optim.Optimizer)
    assert textbook.implementation == "textbook"
    assert set(T.OPTIMIZERS) == set(HYPER)


# ---------------------------------------------------------------------------------------------
# errors name the argument


def _raises(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc, match=match):
        fn(*args, **kwargs)


def test_errors_name_the_argument():
    model = build("mlp_bn_dropout_sigmoid", (2, 3, 3))
    x, y = data((2, 3, 3), n=4)
    _raises(ValueError, "name", T.build_model, "resnet", (1, 8, 8), 3)
    _raises(ValueError, "dtype", T.build_model, "mlp", (1, 8, 8), 3, dtype="float16")
    _raises(ValueError, "input_shape", T.build_model, "simple_cnn", (1, 3, 3), 3)
    _raises(TypeError, "'gamma'", T.build_optimizer, "adam", model, gamma=0.1)
    _raises(TypeError, "'momentum'", T.build_optimizer, "adam", model, momentum=0.9)
    _raises(TypeError, "betas", T.build_optimizer, "adam", model, betas=(0.9, 0.99), beta1=0.9)
    _raises(ValueError, "lr", T.build_optimizer, "sgd", model, lr=-1.0)
    _raises(ValueError, "momentum", T.build_optimizer, "momentum", model, momentum=1.5)
    _raises(ValueError, "name", T.build_optimizer, "lbfgs", model)
    _raises(ValueError, "implementation", T.build_optimizer, "sgd", model,
            implementation="fast")
    _raises(TypeError, "model", T.build_optimizer, "sgd", object())
    opt = T.build_optimizer("sgd", model)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = 0.0
    weights = model.get_weights()
    _raises(KeyError, "bn1.running_var", model.set_weights,
            {k: v for k, v in weights.items() if k != "bn1.running_var"})
    _raises(KeyError, "extra", model.set_weights, {**weights, "extra": np.zeros(1)})
    _raises(ValueError, "fc1.weight", model.set_weights, {**weights, "fc1.weight": np.zeros(3)})
    _raises(ValueError, "x", model.predict, np.zeros((2, 1, 3, 3)))
    _raises(TypeError, "x", model.predict, [[1.0]])
    _raises(ValueError, "labels", T.train_step, model, opt, x, y + 5)
    _raises(TypeError, "rng", T.train_step, model, opt, x, y, rng=5)
    _raises(ValueError, "opt", T.train_step, model,
            T.build_optimizer("sgd", build("mlp_tanh", (2, 3, 3))), x, y)
    _raises(KeyError, "dropout2", T.gradients, model, x, y,
            {"dropout1": np.ones((4, 7))})
    _raises(ValueError, "padding", T.MaxPool2d, 2, 2, ((0, 2), (0, 0)))


@pytest.mark.parametrize("padding", [1, "same"])
def test_bias_free_conv2d_layer_is_nn_conv2d_without_bias(padding):
    """Conv2d(bias=False): no bias parameter (nn.Conv2d's own), the reference conv with b=None,
    on the native path (padding 1) and the pad-first one ("same" with stride 2)."""
    layer = T.Conv2d(2, 3, 3, stride=2, padding=padding, bias=False).double()
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["weight"]
    x = np.random.default_rng(0).standard_normal((2, 2, 7, 6))
    y = layer(torch.from_numpy(x)).detach().numpy()
    expected, _ = ref.conv2d_forward(x, layer.weight.detach().numpy(), None, 2, padding)
    assert normalized_error(y, expected) <= TOL64


def test_flatten_nhwc_flattens_channels_last():
    x = torch.arange(24.0).reshape(2, 3, 2, 2)
    np.testing.assert_array_equal(T.Flatten(order="nhwc")(x).numpy(),
                                  x.permute(0, 2, 3, 1).reshape(2, -1).numpy())
    np.testing.assert_array_equal(T.Flatten()(x).numpy(), x.reshape(2, -1).numpy())
    with pytest.raises(ValueError, match="order: got 'hwc'"):
        T.Flatten(order="hwc")
