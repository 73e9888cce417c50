"""The edge contract of models, layers and training (docs/models.md, "Edges"), every backend.

One test per rule, parametrised over the backends (conftest.backend: a missing framework is a
visible skip), each asserting values and the exact error message, which is the same text in
every backend because one checker of impls/_checks.py writes it:

1. the input x of predict, train_step and gradients: a float32/float64 NumPy array (cast to
   model.dtype); int, bool, str, complex, float16, object arrays and non-arrays -> TypeError;
2. labels: integer classes (N,) in [0, K) or float probabilities (N, K), errors name
   ``labels``;
3. an empty batch: predict gives (0, K), train_step and gradients raise naming x and leave the
   model (and the optimizer) unchanged;
4. NaN in x: NaN logits for the affected examples only, a NaN loss, never a finite loss while
   the weights turn NaN (issue 9's reproducer: one NaN pixel in an mlp);
5. batch norm training on one value per channel raises ValueError, inference works;
6. set_weights refuses complex, str and object arrays and wrong shapes, naming the key, and
   changes nothing; other real arrays are cast as before;
7. NumPy scalars as build_model and optimizer arguments behave like the Python numbers.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import impls
from parity_tests.conftest import load_or_skip
from reference import models as reference_models

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHAPE = (1, 4, 4)
K = 3
N = 4


def _x(n=N, shape=SHAPE, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, *shape)).astype(dtype)


def _y(n=N, k=K):
    return np.arange(n) % k


def _mlp(B, **options):
    options.setdefault("hidden", (6, 5))
    return B.build_model("mlp", SHAPE, K, seed=0, **options)


def _same_weights(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


# ---------------------------------------------------------------------------------------------
# 1. accepted input


BAD_DTYPES = [np.int64, np.int32, np.uint8, np.bool_, np.complex64, np.complex128, np.float16,
              np.str_, np.object_]


def _calls(B, model):
    opt = B.build_optimizer("sgd", model, lr=0.1)
    return {
        "predict": lambda x: model.predict(x),
        "predict-batched": lambda x: model.predict(x, batch_size=3),
        "train_step": lambda x: B.train_step(model, opt, x, _y()),
        "gradients": lambda x: B.gradients(model, x, _y()),
    }


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
def test_x_of_another_dtype_is_refused_with_one_message(backend, dtype):
    model = _mlp(backend)
    before = model.get_weights()
    x = _x().astype(dtype)
    for entry, call in _calls(backend, model).items():
        with pytest.raises(TypeError) as err:
            call(x)
        assert str(err.value) == f"x: got dtype {x.dtype}, expected float32 or float64", entry
    assert _same_weights(model.get_weights(), before)


@pytest.mark.parametrize("value", [_x().tolist(), 1.5, None], ids=["list", "float", "None"])
def test_x_that_is_not_an_array_is_refused_with_one_message(backend, value):
    model = _mlp(backend)
    text = impls._checks.describe(value)
    for entry, call in _calls(backend, model).items():
        with pytest.raises(TypeError) as err:
            call(value)
        assert str(err.value) == f"x: got {text}, expected a NumPy array (np.ndarray)", entry


def test_x_of_the_wrong_shape_is_refused_with_one_message(backend):
    model = _mlp(backend)
    for x in (_x(shape=(1, 4, 5)), _x()[0]):
        for entry, call in _calls(backend, model).items():
            with pytest.raises(ValueError) as err:
                call(x)
            assert str(err.value) == (f"x: got shape {x.shape}, expected (N, 1, 4, 4) (the "
                                      "model's input_shape)"), entry


@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
def test_float32_and_float64_x_are_cast_to_the_model_dtype(backend, model_dtype):
    model = backend.build_model("mlp", SHAPE, K, seed=0, dtype=model_dtype, hidden=(6,))
    x64 = _x(dtype=np.float64)
    cast = x64.astype(model_dtype)
    for x in (x64.astype(np.float32), x64):
        logits = model.predict(x)
        assert logits.dtype == np.dtype(model_dtype) and logits.shape == (N, K)
        np.testing.assert_array_equal(logits, model.predict(x.astype(model_dtype)))
        loss, _ = backend.gradients(model, x, _y())
        assert loss == backend.gradients(model, x.astype(model_dtype), _y())[0]
    np.testing.assert_array_equal(model.predict(cast), model.predict(cast.copy(order="F")))


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.str_, np.complex64, np.float16],
                         ids=lambda d: np.dtype(d).name)
def test_numpy_layers_refuse_x_of_another_dtype(dtype):
    # The NumPy layers take NumPy arrays, as the models do (the torch and TensorFlow layers
    # take their framework's tensors).
    B = impls.load("numpy")
    x = _x().astype(dtype)
    for layer in (B.ReLU(), B.Flatten(), B.Conv2d(1, 2, 3), B.MaxPool2d(2), B.BatchNorm2d(1)):
        with pytest.raises(TypeError) as err:
            layer.forward(x)
        assert str(err.value) == f"x: got dtype {x.dtype}, expected float32 or float64"


# ---------------------------------------------------------------------------------------------
# 2. labels


def test_probability_labels_give_the_cross_entropy_against_the_probabilities(backend):
    model = backend.build_model("mlp", SHAPE, K, seed=0, dtype="float64", hidden=(6,))
    x, y = _x(dtype=np.float64), _y()
    onehot = np.eye(K)[y]
    soft = np.random.default_rng(5).dirichlet(np.ones(K), N)
    logits = model.predict(x)  # no dropout, no batch norm: training logits = inference logits
    loss_int, grads_int = backend.gradients(model, x, y)
    loss_hot, grads_hot = backend.gradients(model, x, onehot)
    loss_soft, _ = backend.gradients(model, x, soft)
    assert abs(loss_hot - loss_int) < 1e-12
    for key, g in grads_int.items():
        np.testing.assert_allclose(grads_hot[key], g, rtol=0, atol=1e-12, err_msg=key)
    expected = -np.mean(np.sum(soft * _log_softmax(logits), axis=1))
    assert abs(loss_soft - expected) < 1e-12
    # float32 probabilities into a float64 model are cast, like x
    assert abs(backend.gradients(model, x, soft.astype(np.float32))[0]
               - backend.gradients(model, x, soft.astype(np.float32).astype(np.float64))[0]
               ) < 1e-15
    opt = backend.build_optimizer("sgd", model, lr=0.1)
    assert abs(backend.train_step(model, opt, x, soft) - expected) < 1e-12
    assert not _same_weights(model.get_weights(), _mlp_weights(backend))


def _mlp_weights(backend):
    return backend.build_model("mlp", SHAPE, K, seed=0, dtype="float64", hidden=(6,)
                               ).get_weights()


LABEL_ERRORS = [
    ("out-of-range", np.array([0, 1, 2, 3]), ValueError,
     "labels: got values in [0, 3], expected classes in [0, 2]"),
    ("negative", np.array([0, -1, 2, 1]), ValueError,
     "labels: got values in [-1, 2], expected classes in [0, 2]"),
    ("too-few", np.array([0, 1, 2]), ValueError,
     "labels: got 3 labels, expected 4 (one per row of logits, shape (4, 3))"),
    ("float-classes", np.array([0.0, 1.0, 2.0, 0.0]), TypeError,
     "labels: got array of shape (4,) and dtype float64, expected integer classes of shape "
     "(N,) or float probabilities of shape (N, K) with logits' dtype"),
    ("bool", np.array([True, False, True, False]), TypeError,
     "labels: got array of shape (4,) and dtype bool, expected integer classes of shape (N,) "
     "or float probabilities of shape (N, K) with logits' dtype"),
    ("probabilities-wrong-K", np.full((4, 2), 0.5), ValueError,
     "labels: got shape (4, 2), expected (4, 3) (probabilities shaped like logits)"),
    ("list", [0, 1, 2, 0], TypeError,
     "labels: got [0, 1, 2, 0], expected a NumPy array of integer classes (N,) or "
     "probabilities (N, K)"),
]


@pytest.mark.parametrize("case, labels, error, message", LABEL_ERRORS,
                         ids=[case[0] for case in LABEL_ERRORS])
def test_bad_labels_are_refused_with_one_message(backend, case, labels, error, message):
    model = _mlp(backend)
    before = model.get_weights()
    opt = backend.build_optimizer("sgd", model, lr=0.1)
    for call in (lambda: backend.train_step(model, opt, _x(), labels),
                 lambda: backend.gradients(model, _x(), labels)):
        with pytest.raises(error) as err:
            call()
        assert str(err.value) == message
    assert _same_weights(model.get_weights(), before)


# ---------------------------------------------------------------------------------------------
# 3. empty batch


@pytest.mark.parametrize("name", ["mlp", "simple_cnn"])
@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
def test_predict_on_an_empty_batch_gives_zero_rows(backend, name, model_dtype):
    model = backend.build_model(name, (1, 8, 8), K, seed=0, dtype=model_dtype)
    x = np.zeros((0, 1, 8, 8), np.float32)
    for batch_size in (None, 2):
        logits = model.predict(x, batch_size=batch_size)
        assert logits.shape == (0, K) and logits.dtype == np.dtype(model_dtype)


def test_training_on_an_empty_batch_raises_and_changes_nothing(backend):
    model = _mlp(backend, batchnorm=True)
    before = model.get_weights()
    opt = backend.build_optimizer("adam", model, lr=0.01)
    x = np.zeros((0, *SHAPE), np.float32)
    message = ("x: got an empty batch of shape (0, 1, 4, 4), expected at least one example "
               "(the mean loss over no examples is undefined)")
    for call in (lambda: backend.train_step(model, opt, x, _y(0)),
                 lambda: backend.gradients(model, x, _y(0)),
                 lambda: backend.train_step(model, opt, x, np.zeros((0, K), np.float32))):
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == message
    assert _same_weights(model.get_weights(), before)
    # the optimizer did not step either: the next step is a fresh model's first step
    fresh = _mlp(backend, batchnorm=True)
    fresh_opt = backend.build_optimizer("adam", fresh, lr=0.01)
    assert backend.train_step(model, opt, _x(), _y()) == backend.train_step(fresh, fresh_opt,
                                                                             _x(), _y())
    assert _same_weights(model.get_weights(), fresh.get_weights())


# ---------------------------------------------------------------------------------------------
# 4. NaN in, NaN out


def test_issue9_one_nan_pixel_in_an_mlp_gives_a_nan_loss(backend):
    # Issue 9's reproducer: the TensorFlow mlp was reported to give finite logits and a finite
    # loss (2.51) while fc1.weight silently became NaN.
    model = backend.build_model("mlp", (1, 8, 8), 10, seed=0, init="he_normal")
    opt = backend.build_optimizer("adam", model, lr=2e-3)
    x = _x(32, (1, 8, 8))
    y = np.arange(32) % 10
    x[0, 0, 3, 3] = np.nan
    logits = model.predict(x)
    assert np.isnan(logits[0]).all() and np.isfinite(logits[1:]).all()
    assert np.isnan(backend.gradients(model, x, y)[0])
    assert np.isnan(backend.train_step(model, opt, x, y))
    # the weights are NaN now, and it shows: never a finite loss over NaN weights
    assert np.isnan(model.get_weights()["fc1.weight"]).any()
    clean = _x(32, (1, 8, 8), seed=1)
    assert np.isnan(model.predict(clean)).all()
    assert np.isnan(backend.train_step(model, opt, clean, y))


NAN_MODELS = [(name, {}) for name in reference_models.MODELS] + [
    ("three_layer_cnn", dict(batchnorm=True)),
    ("mlp", dict(batchnorm=True, dropout=0.5)),
    ("mlp", dict(activation="sigmoid")),
    ("mlp", dict(activation="tanh")),
]


@pytest.mark.parametrize("name, options", NAN_MODELS,
                         ids=[n + "".join(f"-{k}={v}" for k, v in o.items())
                              for n, o in NAN_MODELS])
def test_a_nan_pixel_gives_nan_logits_for_its_example_and_a_nan_loss(backend, name, options):
    shape = (3, 16, 16)
    model = backend.build_model(name, shape, K, seed=0, **options)
    x = _x(N, shape)
    clean = model.predict(x)
    x[0, 1, 7, 9] = np.nan
    logits = model.predict(x)
    assert np.isnan(logits[0]).all(), logits[0]
    # inference keeps the examples apart (to rounding: a batch's kernel may change with it)
    np.testing.assert_allclose(logits[1:], clean[1:], rtol=1e-5, atol=1e-6)
    masks = reference_models.dropout_masks(model.spec, N, np.random.default_rng(1))
    assert np.isnan(backend.gradients(model, x, _y(), masks)[0])
    opt = backend.build_optimizer("sgd", model, lr=0.01)
    assert np.isnan(backend.train_step(model, opt, x, _y(), rng=np.random.default_rng(1)))


# ---------------------------------------------------------------------------------------------
# 5. batch norm on one value per channel


def test_batchnorm_training_on_one_example_raises_and_inference_works(backend):
    model = _mlp(backend, batchnorm=True)
    weights = model.get_weights()
    opt = backend.build_optimizer("sgd", model, lr=0.1)
    x = _x(1)
    message = ("x: got 1 example (shape (1, 1, 4, 4)), expected at least 2 when training: "
               "bn1 (BatchNorm1d) would see 1 value per channel (the unbiased variance needs "
               "two)")
    for call in (lambda: backend.train_step(model, opt, x, _y(1)),
                 lambda: backend.gradients(model, x, _y(1))):
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == message
    assert _same_weights(model.get_weights(), weights)
    logits = model.predict(x)
    assert logits.shape == (1, K) and np.isfinite(logits).all()
    np.testing.assert_allclose(logits, model.predict(_x(2))[:1], rtol=1e-5, atol=1e-6)
    assert np.isfinite(backend.train_step(model, opt, _x(2), _y(2)))


def _batchnorm_layer_call(B, name, layer_cls, x_nchw):
    """Run a standalone batch-norm layer of backend ``name`` on x (NCHW or (N, D))."""
    layer = layer_cls(x_nchw.shape[1])
    if name == "numpy":
        return lambda training: layer.forward(x_nchw, training=training)
    if name == "torch":
        import torch
        t = torch.from_numpy(x_nchw)

        def call(training):
            layer.train(training)
            return layer(t).detach().numpy()
        return call
    import tensorflow as tf
    h = tf.constant(x_nchw if x_nchw.ndim == 2 else x_nchw.transpose(0, 2, 3, 1))
    layer.build(h.shape)
    return lambda training: layer(h, training=training).numpy()


@pytest.mark.parametrize("name", impls.BACKENDS)
@pytest.mark.parametrize("kind, shape", [("BatchNorm1d", (1, 3)), ("BatchNorm2d", (1, 2, 1, 1))])
def test_batchnorm_layer_on_one_value_per_channel_raises_in_training(name, kind, shape):
    B = load_or_skip(name)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    call = _batchnorm_layer_call(B, name, getattr(B, kind), x)
    with pytest.raises(ValueError) as err:
        call(True)
    assert str(err.value) == (f"x: got shape {shape} with 1 value per channel, expected more "
                              "than 1 when training (the unbiased variance needs two)")
    out = call(False)  # inference: running statistics 0 and 1, eps 1e-5
    out = out if out.ndim == 2 else out.reshape(x.shape)
    np.testing.assert_allclose(out, x / np.sqrt(1 + 1e-5), rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# 6. set_weights


def _bad(kind, value):
    if kind == "complex":
        return value.astype(np.complex64)
    if kind == "str":
        return value.astype(str)
    if kind == "object":
        return value.astype(object)
    return value[:1]  # wrong shape


@pytest.mark.parametrize("kind, error", [("complex", TypeError), ("str", TypeError),
                                         ("object", TypeError), ("shape", ValueError)])
def test_set_weights_refuses_non_real_arrays_and_wrong_shapes_naming_the_key(backend, kind,
                                                                             error):
    model = _mlp(backend)
    before = model.get_weights()
    bad = {k: v + 1 for k, v in before.items()}
    bad["fc1.weight"] = _bad(kind, before["fc1.weight"])
    with pytest.raises(error) as err:
        model.set_weights(bad)
    got = bad["fc1.weight"]
    expected = (f"weights['fc1.weight']: got shape {got.shape}, expected (6, 16) (the model's "
                "shape)" if kind == "shape" else
                f"weights['fc1.weight']: got dtype {got.dtype}, expected a real array "
                "castable to float32")
    assert str(err.value) == expected
    assert _same_weights(model.get_weights(), before)  # nothing assigned


def test_set_weights_casts_other_real_arrays_and_names_missing_and_extra_keys(backend):
    model = _mlp(backend)
    weights = model.get_weights()
    ints = {k: np.round(v * 10).astype(np.int64) for k, v in weights.items()}
    model.set_weights(ints)
    assert all(np.array_equal(model.get_weights()[k], v.astype(np.float32))
               for k, v in ints.items())
    halves = {k: v.astype(np.float16) for k, v in weights.items()}
    model.set_weights(halves)
    assert all(np.array_equal(model.get_weights()[k], v.astype(np.float32))
               for k, v in halves.items())
    model.set_weights({k: v.tolist() for k, v in weights.items()})  # nested lists as before
    assert _same_weights(model.get_weights(), weights)
    with pytest.raises(KeyError) as err:
        model.set_weights({k: v for k, v in weights.items() if k != "fc2.bias"})
    assert err.value.args[0] == "weights: 'fc2.bias' missing"
    with pytest.raises(KeyError) as err:
        model.set_weights({**weights, "fc9.bias": weights["fc2.bias"]})
    assert err.value.args[0] == "weights: 'fc9.bias' not a weight of this model"
    with pytest.raises(TypeError) as err:
        model.set_weights(list(weights.values()))
    assert str(err.value) == ("weights: got list, expected a dict name -> array like "
                              "get_weights()")


# ---------------------------------------------------------------------------------------------
# 7. NumPy scalars


def test_numpy_scalars_build_the_same_model_as_python_numbers(backend):
    python = backend.build_model("mlp", (1, 4, 4), 3, seed=2, hidden=(5, 4), dropout=0.25,
                                 weight_decay=0.5)
    numpy = backend.build_model("mlp", (np.int64(1), np.int32(4), np.int64(4)), np.int64(3),
                                seed=np.int64(2), hidden=(np.int64(5), np.int16(4)),
                                dropout=np.float32(0.25), weight_decay=np.float64(0.5),
                                dtype=np.float32)
    assert numpy.spec == python.spec
    assert _same_weights(numpy.get_weights(), python.get_weights())
    x = _x()
    np.testing.assert_array_equal(numpy.predict(x, batch_size=np.int64(3)),
                                  python.predict(x, batch_size=3))
    cnn = backend.build_model("simple_cnn", (np.int64(1), np.int64(8), np.int64(8)),
                              np.int64(3), seed=np.int64(0))
    assert cnn.predict(_x(2, (1, 8, 8))).shape == (2, 3)
    # the CNNs' options: three_layer_cnn's hidden and batchnorm, cifar_lrn_cnn's norm2
    bn = backend.build_model("three_layer_cnn", (1, 8, 8), 3, hidden=np.int64(6),
                             batchnorm=np.bool_(True))
    assert bn.spec == backend.build_model("three_layer_cnn", (1, 8, 8), 3, hidden=6,
                                          batchnorm=True).spec
    assert (backend.build_model("cifar_lrn_cnn", (1, 8, 8), 3, norm2=np.bool_(True)).spec
            == backend.build_model("cifar_lrn_cnn", (1, 8, 8), 3, norm2=True).spec)


@pytest.mark.parametrize("name, hyper", [
    ("sgd", dict(weight_decay=np.float32(0.125))),
    ("momentum", dict(momentum=np.float64(0.875))),
    ("nesterov", dict(momentum=np.float32(0.5))),
    ("adagrad", dict(eps=np.float64(2.0**-20))),
    ("rmsprop", dict(alpha=np.float32(0.875), eps=np.float32(2.0**-20))),
    ("adam", dict(betas=(np.float32(0.875), np.float64(0.9375)), eps=np.float64(2.0**-20))),
])
@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
def test_numpy_scalar_hyperparameters_step_like_python_numbers(backend, name, hyper,
                                                                model_dtype):
    def run(hp, lr, lr2):
        model = backend.build_model("mlp", SHAPE, K, seed=0, dtype=model_dtype, hidden=(6,))
        opt = backend.build_optimizer(name, model, lr=lr, **hp)
        losses = [backend.train_step(model, opt, _x(seed=s), _y()) for s in range(2)]
        opt.lr = lr2
        losses.append(backend.train_step(model, opt, _x(seed=2), _y()))
        return losses, model.get_weights(), opt.lr

    def python(value):
        return tuple(map(python, value)) if isinstance(value, tuple) else value.item()

    got = run(hyper, np.float32(0.0625), np.float64(0.03125))
    expected = run({k: python(v) for k, v in hyper.items()}, 0.0625, 0.03125)
    assert got[0] == expected[0] and got[2] == expected[2] == 0.03125
    assert type(got[2]) is float
    assert _same_weights(got[1], expected[1])
    assert all(v.dtype == np.dtype(model_dtype) for v in got[1].values())
